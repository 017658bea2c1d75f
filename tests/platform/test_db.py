from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.db import async_url, create_engine
from cathouse.platform.settings import Settings


@pytest.mark.parametrize(
    ("given", "driver", "query"),
    [
        ("postgresql://u:p@db.example.com:5432/app", "postgresql+asyncpg", {}),
        ("postgres://u:p@db/app?sslmode=require", "postgresql+asyncpg", {"ssl": "require"}),
        ("postgresql+asyncpg://u@/app?host=/run/pg", "postgresql+asyncpg", {"host": "/run/pg"}),
    ],
)
def test_any_postgres_url_becomes_an_asyncpg_one(given: str, driver: str, query: dict[str, str]) -> None:
    url = async_url(given)
    assert url.drivername == driver
    assert dict(url.query) == query


async def test_each_engine_names_its_service_to_the_server(settings: Settings) -> None:
    engine: AsyncEngine = create_engine(settings, application_name="cathouse-catalog", pool_size=1)
    try:
        async with engine.connect() as conn:
            name = await conn.scalar(text("SELECT current_setting('application_name')"))
        assert name == "cathouse-catalog"
        assert engine.pool.size() == 1  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def test_an_engine_needs_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATHOUSE_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    with pytest.raises(RuntimeError, match="CATHOUSE_DATABASE_URL"):
        create_engine(settings, application_name="x", pool_size=1)
