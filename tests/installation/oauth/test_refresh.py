"""One refresh per expiry, whatever the number of proxy processes, under a steady stream of calls.

Access tokens live 5 seconds. For 30 seconds an application calls the cat through both proxy
processes (``cathouse up`` and ``cathouse serve proxy``), a few calls at a time. Every call must
succeed, and the provider must see each refresh token used exactly once: no two processes
refresh the same token, and no refresh comes before the previous token was due.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import pytest

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
from tests.installation.oauth.support import Provider

pytestmark = pytest.mark.e2e

DURATION = 30.0
CALLS = 200


async def test_tokens_are_refreshed_once_per_expiry_across_two_processes(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment
) -> None:
    slug, _ = await publish_oauth_cat(api, people, provider, deployment)
    installation = await install(api, people.owner, slug)
    iid = installation["id"]
    assert (
        await api.get(await grant(api, people.owner, iid, username="carol"), headers=people.owner.headers)
    ).is_success
    await wait_for_status(api, people.owner, iid, "active")
    key = await api.post(f"/api/v1/installations/{iid}/api-keys", json={"name": "load"}, headers=people.owner.headers)
    assert key.status_code == 201, key.text
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await call_through(api, f"/api/v1/proxy/{iid}/balances/0", people.owner)).status_code == 200
    provider.reset()

    async with httpx.AsyncClient(timeout=30) as client:

        async def call(i: int) -> httpx.Response:
            base = (deployment.platform, deployment.proxy)[i % 2]
            return await client.get(f"{base}/api/v1/proxy/{iid}/balances/{i}", headers=headers)

        started = time.monotonic()
        responses: list[httpx.Response] = []
        # Four at a time, 50 rounds spread evenly over the 30 seconds.
        for round_ in range(CALLS // 4):
            due = started + round_ * DURATION / (CALLS // 4)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            responses += await asyncio.gather(*(call(round_ * 4 + j) for j in range(4)))
        elapsed = time.monotonic() - started

    failed = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 200]
    assert failed == [], failed
    assert {r.json()["sub"] for r in responses} == {"carol"}

    stats = provider.stats()
    refreshes = [entry["at"] for entry in stats["refresh_log"]]
    assert stats["reused_refresh_tokens"] == 0, stats
    assert stats["refresh_failures"] == 0, stats
    assert len({entry["old_refresh_token_id"] for entry in stats["refresh_log"]}) == len(refreshes)
    # A token is refreshed in the last quarter of its life: never twice in one lifetime, and
    # always before it runs out (no call failed), so about one refresh per 3.75 to 5 seconds.
    gaps = [b - a for a, b in itertools.pairwise(refreshes)]
    assert all(gap > ACCESS_TTL * 0.5 for gap in gaps), gaps
    assert elapsed / ACCESS_TTL - 1 <= len(refreshes) <= elapsed / (ACCESS_TTL * 0.75) + 1, (len(refreshes), elapsed)
    print(f"\n{CALLS} calls over {elapsed:.1f} s through two processes: {len(refreshes)} refreshes, gaps {gaps}")
