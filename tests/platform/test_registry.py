"""The registry through which a service reads another without importing it."""

from __future__ import annotations

from typing import Protocol

import pytest

from cathouse.platform.registry import NotRegistered, Registry


class Greeter(Protocol):
    def greet(self, name: str) -> str: ...


class Counter(Protocol):
    def count(self) -> int: ...


class English:
    def greet(self, name: str) -> str:
        return f"Hello, {name}"


def test_what_is_provided_under_a_protocol_is_found_by_it() -> None:
    registry = Registry()
    greeter: Greeter = English()
    registry.provide(Greeter, greeter)
    assert registry.get(Greeter).greet("Tom") == "Hello, Tom"
    assert Greeter in registry
    assert Counter not in registry


def test_asking_for_what_nobody_provides_names_it() -> None:
    with pytest.raises(NotRegistered, match="no service provides Counter"):
        Registry().get(Counter)


def test_one_implementation_per_protocol() -> None:
    registry = Registry()
    greeter: Greeter = English()
    registry.provide(Greeter, greeter)
    with pytest.raises(ValueError, match="Greeter is provided twice"):
        registry.provide(Greeter, greeter)
