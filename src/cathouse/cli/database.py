"""Where the CLI's commands find their database: the configured one, or the embedded one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from cathouse.platform.embedded import embedded_database
from cathouse.platform.settings import Settings


@contextmanager
def database_settings(settings: Settings) -> Iterator[Settings]:
    """Settings whose ``database_url`` points at a running server for as long as this lasts."""
    if settings.database_url is not None:
        yield settings
        return
    with embedded_database(settings.data_dir) as url:
        yield settings.model_copy(update={"database_url": SecretStr(url)})
