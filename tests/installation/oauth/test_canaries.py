"""No OAuth token, and no client secret, ever leaves sealed storage except into the call to the cat.

A whole life of OAuth installations runs here (connect, calls with the token in a header and in
the query, refreshes, a revoked grant, reconnect, uninstall); then every token the provider ever
issued, and the client secrets, are searched for in the whole database (outside the sealed
columns, which hold only ciphertext), in both processes' logs, and in the API's answers.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.installation.conftest import wait_for_status
from tests.installation.oauth.conftest import (
    ACCESS_TTL,
    Deployment,
    People,
    call_through,
    grant,
    install,
    publish_oauth_cat,
)
from tests.installation.oauth.support import Provider, aconsent

pytestmark = pytest.mark.e2e

SCHEMAS = ("auth", "catalog", "installation", "proxy", "activity", "events")


async def database_dump(engine: AsyncEngine) -> str:
    """Every row of every table, as text (binary columns come out as hex)."""
    parts: list[str] = []
    async with engine.connect() as conn:
        tables = (
            await conn.execute(
                text("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY(:s)"),
                {"s": list(SCHEMAS)},
            )
        ).all()
        for schema, table in tables:
            rows = await conn.execute(text(f'SELECT t::text FROM "{schema}"."{table}" t'))
            parts.extend(row[0] for row in rows)
    return "\n".join(parts)


async def test_tokens_and_client_secrets_never_leak(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment, engine: AsyncEngine
) -> None:
    answers: list[str] = []
    owner = people.owner

    async def seen(response: httpx.Response) -> httpx.Response:
        answers.append(response.text + str(response.headers))
        return response

    header_cat, header_secret = await publish_oauth_cat(api, people, provider, deployment)
    query_cat, query_secret = await publish_oauth_cat(
        api, people, provider, deployment, token_placement="query", query_param="access_token"
    )
    machine_cat, machine_secret = await publish_oauth_cat(api, people, provider, deployment, grant="client_credentials")

    ids = []
    for slug, who in ((header_cat, "dave"), (query_cat, "erin")):
        installation = await install(api, owner, slug)
        await seen(await api.get(await grant(api, owner, installation["id"], username=who), headers=owner.headers))
        await wait_for_status(api, owner, installation["id"], "active")
        ids.append(installation["id"])
    machine = await install(api, owner, machine_cat)
    await wait_for_status(api, owner, machine["id"], "active")
    ids.append(machine["id"])

    # Calls through both processes, across a refresh.
    for _ in range(2):
        for iid in ids:
            for base in (deployment.platform, deployment.proxy):
                called = await seen(await call_through(api, f"{base}/api/v1/proxy/{iid}/balances/5?x=1", owner))
                assert called.status_code == 200, called.text
        await asyncio.sleep(ACCESS_TTL * 0.8)

    # A grant revoked at the provider, then reconnected.
    provider.revoke_grants("dave")
    await seen(await api.get(f"/api/v1/proxy/{ids[0]}/balances/5", headers=owner.headers))
    await wait_for_status(api, owner, ids[0], "credentials_invalid")
    again = await seen(await api.post(f"/api/v1/installations/{ids[0]}/oauth/reconnect", headers=owner.headers))
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await aconsent(browser, again.json()["authorization_url"], username="dave")
    await seen(await api.get(callback, headers=owner.headers))
    await wait_for_status(api, owner, ids[0], "active")
    await seen(await call_through(api, f"/api/v1/proxy/{ids[0]}/balances/5", owner))

    # What the owner, the publisher and an admin can read.
    for iid in ids:
        await seen(await api.get(f"/api/v1/installations/{iid}", headers=owner.headers))
    await seen(await api.get("/api/v1/installations", headers=owner.headers))
    await seen(await api.get("/api/v1/activity/me", headers=owner.headers))
    await seen(await api.get("/api/v1/activity", headers=owner.headers))
    await seen(await api.get("/api/v1/proxy/audit", headers=owner.headers))
    for slug in (header_cat, query_cat, machine_cat):
        await seen(await api.get(f"/api/v1/cats/{slug}/oauth-client", headers=people.publisher.headers))
        await seen(await api.get(f"/api/v1/cats/{slug}/versions", headers=people.publisher.headers))
    # And the uninstall, which revokes and shreds.
    await seen(await api.delete(f"/api/v1/installations/{ids[1]}", headers=owner.headers))
    await asyncio.sleep(0.5)  # the audit writer's last batch

    canaries = [*provider.issued(), header_secret, query_secret, machine_secret]
    assert len(canaries) >= 10, canaries
    dump = await database_dump(engine)
    logs = "\n".join(log.read_text() for log in deployment.logs)
    assert "oauth token renewed" in logs  # the logs do speak of the tokens, by installation only
    places = {"database": dump, "logs": logs, "answers": "\n".join(answers)}
    leaks = [(where, canary[:6]) for canary in canaries for where, haystack in places.items() if canary in haystack]
    assert leaks == []
