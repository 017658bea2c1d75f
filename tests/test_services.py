"""A process serving one service still reads the others: ``cathouse.services`` registers
every service's readers in every app (``cathouse serve <service>``, ``cathouse up --split``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.contracts.reads import AccountReader, AuditReader, CatReader, InstallationReader
from cathouse.contracts.secrets import SecretVault
from cathouse.services import SERVICES, create_service_app

ServiceClient = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_app_holds_every_services_readers(name: str) -> None:
    registry = create_service_app(name).state.registry
    for reader in (AccountReader, CatReader, InstallationReader, AuditReader, SecretVault):
        assert reader in registry, f"{name} alone cannot read {reader.__name__}"


async def test_the_activity_service_alone_reads_the_catalog(
    committed: AsyncEngine, service_client: ServiceClient
) -> None:
    async with service_client("activity") as activity:
        missing = await activity.get("/api/v1/activity/cats/no-such-cat")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_proxy_alone_unlocks_the_credentials_and_looks_up_api_keys(
    committed: AsyncEngine, service_client: ServiceClient
) -> None:
    async with service_client("proxy") as proxy:
        refused = await proxy.get(
            f"/api/v1/proxy/{uuid.uuid4()}/anything", headers={"Authorization": "Bearer chk_no-such-key"}
        )
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
