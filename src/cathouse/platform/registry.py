"""Implementations one service provides and another looks up, without importing each other.

The owner registers an implementation under the type it implements (a ``typing.Protocol``
of ``cathouse.contracts``); a consumer asks for that type and gets it, typed. The kernel
knows neither side: it keeps the registry on the app (``app.state.registry``) and hands it
to the workers. ``cathouse.services`` fills it with every service's implementations, whichever
of them a process serves: a process serving only the proxy still reads the catalog.

Keys are typed ``Callable[..., T]`` rather than ``type[T]``: mypy refuses a Protocol where
``type[T]`` is expected (it could be instantiated), and a Protocol class is a callable that
would return a ``T``. Registering with the implementation annotated as the Protocol makes mypy
check that it implements it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import Request

T = TypeVar("T")


class NotRegistered(LookupError):
    """Nothing provides what was asked for: the service that owns it registered nothing here."""


class Registry:
    def __init__(self) -> None:
        self._found: dict[Callable[..., Any], object] = {}

    def provide(self, key: Callable[..., T], implementation: T) -> None:
        if key in self._found:
            raise ValueError(f"{_name(key)} is provided twice")
        self._found[key] = implementation

    def get(self, key: Callable[..., T]) -> T:
        try:
            return cast(T, self._found[key])
        except KeyError:
            raise NotRegistered(f"no service provides {_name(key)} in this process") from None

    def __contains__(self, key: Callable[..., Any]) -> bool:
        return key in self._found


def registered(key: Callable[..., T]) -> Callable[[Request], T]:
    """A FastAPI dependency returning the app's implementation of ``key``."""

    def lookup(request: Request) -> T:
        registry: Registry = request.app.state.registry
        return registry.get(key)

    lookup.__name__ = f"registered_{_name(key)}"
    return lookup


def _name(key: Callable[..., Any]) -> str:
    return getattr(key, "__qualname__", repr(key))
