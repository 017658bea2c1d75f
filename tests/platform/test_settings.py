from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cathouse.platform.settings import Environment, Settings, connection_budget
from cathouse.services import SERVICES


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_each_service_has_its_own_port_and_pool() -> None:
    settings = make()
    ports = {name: settings.service(name).port for name in SERVICES}
    assert ports == {"auth": 8005, "catalog": 8002, "installation": 8003, "proxy": 8004, "activity": 8006}


def test_default_pools_fit_a_ten_connection_database_when_every_service_runs_alone() -> None:
    # What each process holds is measured in tests/cli/test_connection_budget.py.
    shares = connection_budget(make())
    assert set(shares) == {*SERVICES, "relay"}
    assert sum(shares.values()) <= 10
    assert make().pool_size + 1 <= 6, "one process: its pool and its LISTEN connection"


def test_a_pool_too_small_for_the_relay_and_its_workers_is_refused() -> None:
    with pytest.raises(ValidationError, match="pool_size"):
        make(events={"pool_size": 1})
    with pytest.raises(ValidationError, match="pool_size"):
        make(pool_size=1)


def test_nested_sections_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATHOUSE_CATALOG__POOL_SIZE", "4")
    monkeypatch.setenv("CATHOUSE_PROXY__PORT", "9104")
    settings = make()
    assert settings.catalog.pool_size == 4
    assert settings.proxy.port == 9104


@pytest.mark.parametrize("key", [None, "short", "dev-only-change-me-master-key-padding-padding"])
def test_production_refuses_to_start_without_a_real_master_key(key: str | None) -> None:
    with pytest.raises(ValidationError, match="CATHOUSE_MASTER_KEY must be set"):
        make(env=Environment.PRODUCTION, master_key=key)


def test_production_accepts_a_configured_master_key() -> None:
    settings = make(env=Environment.PRODUCTION, master_key="k" * 43)
    assert settings.master_key_value() == "k" * 43


def test_production_refuses_a_short_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATHOUSE_METRICS__TOKEN", "letmein")
    with pytest.raises(ValidationError, match="CATHOUSE_METRICS__TOKEN must be at least"):
        make(env=Environment.PRODUCTION, master_key="k" * 43)
    assert make().metrics.token is not None  # development takes any


def test_production_turns_docs_and_public_metrics_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    production = make(env=Environment.PRODUCTION, master_key="k" * 43)
    assert not production.docs_enabled
    assert not production.metrics_on_public_port
    assert make().docs_enabled
    assert make().metrics_on_public_port
    monkeypatch.setenv("CATHOUSE_DOCS", "true")
    monkeypatch.setenv("CATHOUSE_METRICS__TOKEN", "t" * 32)
    asked = make(env=Environment.PRODUCTION, master_key="k" * 43)
    assert asked.docs_enabled
    assert asked.metrics_on_public_port
    monkeypatch.setenv("CATHOUSE_METRICS__PORT", "9100")
    assert not make(env=Environment.PRODUCTION, master_key="k" * 43).metrics_on_public_port


def test_development_generates_the_master_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = make(data_dir=tmp_path).master_key_value()
    second = make(data_dir=tmp_path).master_key_value()
    key_file = tmp_path / "secrets" / "master.key"
    assert first == second
    assert len(first) >= 32
    assert key_file.stat().st_mode & 0o077 == 0, "the key file must be readable by its owner only"


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = make(database_url="postgresql://u:hunter2@db/x", master_key="topsecretvalue")
    assert "hunter2" not in repr(settings)
    assert "topsecretvalue" not in repr(settings)


def test_an_invalid_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATHOUSE_AUTH__PORT", "70000")
    with pytest.raises(ValidationError):
        make()
