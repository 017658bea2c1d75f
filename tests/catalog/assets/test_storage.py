"""One contract, both backends. S3 is a real S3-compatible server spoken to over HTTP: the one
``CATHOUSE_S3_*`` names when set, else moto's server started in this process for the run."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import obstore
import pytest
from moto.server import ThreadedMotoServer
from obstore.store import S3Store
from pydantic import SecretStr

from cathouse.catalog.assets.storage import (
    IMMUTABLE_CACHE_CONTROL,
    AssetStorage,
    InvalidAssetKey,
    LocalStorage,
    S3Storage,
    storage_from_settings,
)
from cathouse.platform.settings import Settings
from tests.support import free_port

if TYPE_CHECKING:
    from obstore.store import S3Config

PNG = b"\x89PNG\r\n\x1a\n not really, but storage does not look"


@pytest.fixture(scope="session")
def s3_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings naming an S3 bucket, under a prefix of this run's own."""
    prefix = f"tests-{uuid.uuid4().hex[:12]}/"
    if os.environ.get("CATHOUSE_S3_BUCKET"):
        configured = Settings(_env_file=None)
        yield configured.model_copy(update={"s3_prefix": configured.s3_prefix + prefix})
        return
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        httpx.put(f"{endpoint}/cathouse-test-assets").raise_for_status()
        yield Settings(
            _env_file=None,
            data_dir=tmp_path_factory.mktemp("data"),
            s3_bucket="cathouse-test-assets",
            s3_endpoint_url=endpoint,
            s3_access_key_id=SecretStr("test-key"),
            s3_secret_access_key=SecretStr("test-secret"),
            s3_prefix=prefix,
        )
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path, s3_settings: Settings) -> AsyncIterator[AssetStorage]:
    store = LocalStorage(tmp_path / "assets") if request.param == "local" else storage_from_settings(s3_settings)
    assert store.name == request.param
    yield store
    await store.close()


@pytest.fixture
async def new_key(storage: AssetStorage) -> AsyncIterator[Callable[[str], str]]:
    """Fresh keys; every object written under one is deleted after the test."""
    made: list[str] = []

    def make(extension: str = "png") -> str:
        made.append(f"{secrets.token_hex(32)}.{extension}")
        return made[-1]

    yield make
    for key in made:
        await storage.delete(key)


async def test_put_get_delete(storage: AssetStorage, new_key: Callable[[str], str]) -> None:
    key = new_key("png")
    await storage.put(key, PNG, "image/png")
    assert await storage.get(key) == PNG

    await storage.delete(key)

    assert await storage.get(key) is None


async def test_a_missing_key_reads_as_none_and_deletes_quietly(
    storage: AssetStorage, new_key: Callable[[str], str]
) -> None:
    key = new_key("webp")
    assert await storage.get(key) is None
    await storage.delete(key)


async def test_writing_a_key_again_is_harmless(storage: AssetStorage, new_key: Callable[[str], str]) -> None:
    key = new_key("jpg")
    await storage.put(key, b"same bytes", "image/jpeg")
    await storage.put(key, b"same bytes", "image/jpeg")
    assert await storage.get(key) == b"same bytes"


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "cat.png",
        "a" * 64 + ".gif",
        "A" * 64 + ".png",
        "a" * 64 + ".png/../../x",
        "a" * 64 + ".png\n",
        "a" * 63 + ".png",
        "",
    ],
)
async def test_anything_but_a_content_key_is_refused(storage: AssetStorage, key: str) -> None:
    with pytest.raises(InvalidAssetKey):
        await storage.put(key, PNG, "image/png")
    with pytest.raises(InvalidAssetKey):
        await storage.get(key)
    with pytest.raises(InvalidAssetKey):
        await storage.delete(key)


async def test_local_files_are_whole_readable_and_alone(tmp_path: Path) -> None:
    directory = tmp_path / "not-yet-made"
    storage = LocalStorage(directory)
    key = "b" * 64 + ".png"

    await storage.put(key, PNG, "image/png")

    assert [p.name for p in directory.iterdir()] == [key]  # no temporary file left behind
    assert (directory / key).stat().st_mode & 0o777 == 0o644


async def test_s3_objects_carry_their_type_and_stay_cached(s3_settings: Settings) -> None:
    storage = storage_from_settings(s3_settings)
    key = "c" * 64 + ".webp"
    await storage.put(key, b"webp bytes", "image/webp")
    try:
        result = await obstore.get_async(_raw_store(s3_settings), key)
        assert result.attributes["Content-Type"] == "image/webp"
        assert result.attributes["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
    finally:
        await storage.delete(key)


def _raw_store(settings: Settings) -> S3Store:
    """The bucket seen without our code, to check what it really holds."""
    assert settings.s3_bucket is not None
    config: S3Config = {"region": settings.s3_region}
    if settings.s3_endpoint_url:
        config["endpoint"] = settings.s3_endpoint_url
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        config["access_key_id"] = settings.s3_access_key_id.get_secret_value()
        config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    allow_http = (settings.s3_endpoint_url or "").startswith("http://")
    return S3Store(
        settings.s3_bucket, prefix=settings.s3_prefix, config=config, client_options={"allow_http": allow_http}
    )


def test_settings_choose_the_backend(tmp_path: Path) -> None:
    plain = Settings(_env_file=None, data_dir=tmp_path, s3_bucket=None)
    chosen = storage_from_settings(plain)
    assert isinstance(chosen, LocalStorage)
    assert chosen.directory == tmp_path / "assets"

    elsewhere = plain.model_copy(update={"catalog": plain.catalog.model_copy(update={"assets_dir": tmp_path / "x"})})
    chosen = storage_from_settings(elsewhere)
    assert isinstance(chosen, LocalStorage)
    assert chosen.directory == tmp_path / "x"

    assert isinstance(storage_from_settings(plain.model_copy(update={"s3_bucket": "b"})), S3Storage)
