"""The gateway: every check a call passes, what reaches the cat, what comes back, one audit record each.

The platform (auth, catalog, installation, proxy, with the relay) runs in this process; the cat
is a real HTTP server on a loopback port, allowed through the SSRF guard by setting.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.proxy.ratelimit import RedisRateLimiter
from cathouse.services import SERVICES, create_app
from tests.catalog.conftest import VERSION
from tests.conftest import truncate_all, truncate_schemas
from tests.installation.conftest import FAST_WEBHOOKS, KEYRING_TABLES, version, wait_for_status
from tests.proxy.conftest import SECRET, People, PrivateRedis, Upstream, audit_rows, installed
from tests.support import in_process


@pytest.fixture(scope="module")
async def app(make_settings: Callable[..., Settings], database_url: str) -> FastAPI:
    settings = make_settings(
        database_url,
        catalog={"allow_http": True},
        installation=FAST_WEBHOOKS,
        events={"poll_interval": 0.05},
        proxy={
            "allow_hosts": ["127.0.0.0/8"],
            "context_cache_ttl": 0,
            "audit_flush_interval": 0.05,
            "retry_backoff": 0.01,
            "breaker_failures": 3,
            "breaker_open_seconds": 30,
        },
    )
    services = [SERVICES[s] for s in ("auth", "catalog", "installation", "proxy")]
    return create_app(services, settings=settings, run_relay=True)


@pytest.fixture(scope="module")
async def platform(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    try:
        async with in_process(app) as client:
            yield client
    finally:
        await truncate_all(engine)


@pytest.fixture
async def api(
    platform: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, upstream: Upstream
) -> AsyncIterator[httpx.AsyncClient]:
    upstream.seen.clear()
    upstream.bodies.clear()
    upstream.status = 200
    yield platform
    # Every record of this test written before the log is emptied for the next.
    await app.state.proxy.audit.flush()
    await truncate_schemas(engine, ("installation", "catalog", "events", "proxy"), keep=KEYRING_TABLES)


async def test_an_owner_call_reaches_the_cat_with_the_credential_and_nothing_of_the_caller(
    api: httpx.AsyncClient, people: People, upstream: Upstream, engine: AsyncEngine
) -> None:
    installation = await installed(api, people, upstream)
    response = await api.get(
        f"/api/v1/proxy/{installation}/balances/42?team=blue",
        headers={
            **people.owner.headers,
            "Cookie": "platform=1",
            "X-Request-ID": "req-123",
            "Connection": "x-drop",
            "X-Drop": "hop",
            "Accept": "application/json",
        },
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"path": "/v1/balances/42", "query": "team=blue"}
    assert response.headers["x-request-id"] == "req-123"
    assert response.headers["x-cat"] == "yes"
    assert "set-cookie" not in response.headers
    assert int(response.headers["ratelimit-limit"]) == 600
    assert int(response.headers["ratelimit-remaining"]) == 599
    seen = upstream.seen[-1]
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert people.owner.headers["Authorization"].split()[1] not in str(seen.headers)
    assert "cookie" not in seen.headers
    assert "x-drop" not in seen.headers
    assert seen.headers["x-request-id"] == "req-123"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["host"] == f"127.0.0.1:{upstream.port}"

    [row] = await audit_rows(engine, 1)
    assert (row["decision"], row["status"], row["upstream_status"]) == ("allowed", 200, 200)
    assert row["installation_id"] == uuid.UUID(installation)
    assert row["owner_id"] == uuid.UUID(people.owner.id)
    assert row["request_id"] == "req-123"
    assert row["path"] == "/balances/42?team=blue"
    assert row["bytes_out"] == len(response.content)


async def test_an_api_key_calls_its_own_installation_and_no_other(
    api: httpx.AsyncClient, people: People, upstream: Upstream, engine: AsyncEngine
) -> None:
    installation = await installed(api, people, upstream)
    other = await installed(api, people, upstream)
    created = await api.post(
        f"/api/v1/installations/{installation}/api-keys", json={"name": "app"}, headers=people.owner.headers
    )
    key = created.json()["key"]

    posted = await api.post(
        f"/api/v1/proxy/{installation}/awards",
        json={"user": "42", "points": 5},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert posted.status_code == 200, posted.text
    assert upstream.bodies[-1] == b'{"user":"42","points":5}'
    assert upstream.seen[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert key not in str(upstream.seen[-1].headers)

    elsewhere = await api.get(f"/api/v1/proxy/{other}/balances/1", headers={"Authorization": f"Bearer {key}"})
    assert elsewhere.status_code == 404
    revoked = await api.delete(
        f"/api/v1/installations/{installation}/api-keys/{created.json()['id']}", headers=people.owner.headers
    )
    assert revoked.status_code == 204
    after = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401

    rows = await audit_rows(engine, 3)
    assert [(r["decision"], r["status"]) for r in rows] == [
        ("allowed", 200),
        ("not_found", 404),
        ("unauthenticated", 401),
    ]
    assert rows[0]["api_key_id"] == uuid.UUID(created.json()["id"])


async def test_each_call_leaves_one_access_log_line_with_the_proxy_route_and_nothing_it_carried(
    api: httpx.AsyncClient, people: People, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    installation = await installed(api, people, upstream)
    created = await api.post(
        f"/api/v1/installations/{installation}/api-keys", json={"name": "app"}, headers=people.owner.headers
    )
    key = created.json()["key"]
    capsys.readouterr()
    base = f"/api/v1/proxy/{installation}"
    allowed = await api.get(
        f"{base}/balances/7?secret=hush-hush", headers={"Authorization": f"Bearer {key}", "X-Request-ID": "px-1"}
    )
    assert allowed.status_code == 200
    refused = await api.get(f"{base}/balances/7?secret=hush-hush", headers={"X-Request-ID": "px-2"})
    assert refused.status_code == 401
    captured = capsys.readouterr().err

    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "cathouse.access"]
    assert [(a["request_id"], a["method"], a["route"], a["status"]) for a in access] == [
        ("px-1", "GET", "/api/v1/proxy/{installation_id}/{path:path}", 200),
        ("px-2", "GET", "/api/v1/proxy/{installation_id}/{path:path}", 401),
    ]
    assert access[0]["user_id"] == people.owner.id  # the key's owner
    assert access[1]["user_id"] is None
    assert all(a["duration_ms"] > 0 and a["service"] == "cathouse" for a in access)
    for carried in ("hush-hush", key, SECRET, installation, "balances"):
        assert carried not in captured


async def test_refusals_name_what_is_missing_and_each_leaves_one_audit_record(
    api: httpx.AsyncClient, people: People, upstream: Upstream, engine: AsyncEngine
) -> None:
    installation = await installed(api, people, upstream)
    base = f"/api/v1/proxy/{installation}"
    cases = [
        (await api.get(f"{base}/balances/1"), 401, "unauthenticated"),
        (await api.get(f"{base}/balances/1", headers={"Authorization": "Bearer not-a-token"}), 401, "unauthenticated"),
        (await api.get(f"{base}/balances/1", headers=people.stranger.headers), 404, "not_found"),
        (await api.get(f"/api/v1/proxy/{uuid.uuid4()}/balances/1", headers=people.owner.headers), 404, "not_found"),
        (await api.get(f"{base}/nowhere", headers=people.owner.headers), 404, "not_found"),
        (await api.delete(f"{base}/awards", headers=people.owner.headers), 404, "not_found"),
        (await api.get(f"{base}/export", headers=people.owner.headers), 403, "no_permission"),
        (await api.get(f"{base}/balances/.%2E", headers=people.owner.headers), 400, "bad_request"),
        (await api.get(f"{base}/balances/%2e%2e", headers=people.owner.headers), 400, "bad_request"),
        (await api.request("TRACE", f"{base}/balances/1", headers=people.owner.headers), 405, "method_not_allowed"),
        (await api.options(f"{base}/balances/1"), 405, "method_not_allowed"),
    ]
    for response, status, decision in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["decision"] == decision
    assert cases[6][0].json()["permission"] == "points:export"
    # A method no cat's map can name, whoever asks: every method a proxy path has, in Allow.
    assert cases[9][0].headers["allow"] == cases[10][0].headers["allow"] == "DELETE, GET, HEAD, PATCH, POST, PUT"
    assert upstream.seen == [], "no refused call reached the cat"

    rows = await audit_rows(engine, len(cases))
    assert [(r["decision"], r["status"]) for r in rows] == [(d, s) for _, s, d in cases]


async def test_an_id_the_gateway_cannot_read_is_refused_and_the_call_is_documented(
    api: httpx.AsyncClient, people: People, upstream: Upstream
) -> None:
    installation = await installed(api, people, upstream)
    not_an_id = await api.get("/api/v1/proxy/not-an-id/balances/1", headers=people.owner.headers)
    assert not_an_id.status_code == 422
    assert not_an_id.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in not_an_id.json()["errors"]] == ["path.installation_id"]
    # Only the canonical spelling names an installation: no second way in past the gateway.
    compact = uuid.UUID(installation).hex
    unhyphenated = await api.get(f"/api/v1/proxy/{compact}/balances/1", headers=people.owner.headers)
    assert unhyphenated.status_code == 404
    assert unhyphenated.headers["content-type"] == "application/problem+json"
    assert upstream.seen == []

    paths = (await api.get("/api/v1/openapi.json")).json()["paths"]
    documented = paths["/api/v1/proxy/{installation_id}/{path}"]
    assert sorted(documented) == ["delete", "get", "patch", "post", "put"]
    assert {"401", "403", "404", "405", "429", "502"} <= set(documented["get"]["responses"])
    # The owner's access token or the installation's API key, either as the bearer token.
    assert documented["get"]["security"] == [{"HTTPBearer": []}, {"InstallationApiKey": []}]
    assert documented["post"]["requestBody"]["content"]["*/*"]["schema"] == {"type": "string", "format": "binary"}
    assert "requestBody" not in documented["get"]
    # The routes behind the gateway answer a method they lack the same way.
    traced = await api.request("TRACE", "/api/v1/proxy/not-an-id/balances/1")
    assert traced.status_code == 405
    assert traced.headers["allow"] == "DELETE, GET, PATCH, POST, PUT"


async def test_a_suspended_installation_is_not_forwarded(
    api: httpx.AsyncClient, people: People, upstream: Upstream
) -> None:
    installation = await installed(api, people, upstream)
    suspended = await api.post(
        f"/api/v1/installations/{installation}/suspend", json={"reason": "holiday"}, headers=people.owner.headers
    )
    assert suspended.status_code == 200, suspended.text
    response = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    assert response.status_code == 409
    assert response.json()["current_status"] == "suspended"
    assert upstream.seen == []


async def test_the_rate_plan_is_enforced_with_headers(
    api: httpx.AsyncClient, people: People, upstream: Upstream, engine: AsyncEngine
) -> None:
    installation = await installed(api, people, upstream, rate_limit_per_minute=5)
    statuses = []
    for _ in range(7):
        response = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
        statuses.append(response.status_code)
    assert statuses == [200] * 5 + [429] * 2
    assert response.json()["decision"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit-remaining"] == "0"
    assert len(upstream.seen) == 5
    rows = await audit_rows(engine, 7)
    assert [r["decision"] for r in rows] == ["allowed"] * 5 + ["rate_limited"] * 2


async def test_an_upstream_401_marks_the_credentials_invalid_and_a_success_restores_them(
    api: httpx.AsyncClient, people: People, upstream: Upstream
) -> None:
    installation = await installed(api, people, upstream)
    upstream.status = 401
    rejected = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    assert rejected.status_code == 401
    await wait_for_status(api, people.owner, installation, "credentials_invalid")

    upstream.status = 200
    accepted = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    assert accepted.status_code == 200
    await wait_for_status(api, people.owner, installation, "active")


async def test_a_failing_cat_is_retried_then_its_circuit_opens(
    api: httpx.AsyncClient, people: People, upstream: Upstream
) -> None:
    installation = await installed(api, people, upstream)
    upstream.status = 503
    first = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    # Three attempts, all 503: the caller gets the cat's answer, and the circuit opens.
    assert first.status_code == 503
    assert len(upstream.seen) == 3
    refused = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    assert refused.status_code == 503
    assert refused.json()["decision"] == "circuit_open"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(upstream.seen) == 3, "an open circuit sends nothing to the cat"
    # A call that is not idempotent is sent once.
    upstream.status = 200


def proxy_samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name.startswith("cathouse_proxy_request") or family.name.startswith("cathouse_proxy_upstream")
        for sample in family.samples
    }


async def test_metrics_count_calls_by_cat_and_decision_with_latency_and_upstream_errors(
    api: httpx.AsyncClient, people: People, upstream: Upstream
) -> None:
    installation = await installed(api, people, upstream)
    cat = (await api.get(f"/api/v1/installations/{installation}", headers=people.owner.headers)).json()["cat"]["slug"]
    before = proxy_samples((await api.get("/metrics")).text)
    base = f"/api/v1/proxy/{installation}"
    for _ in range(3):
        assert (await api.get(f"{base}/balances/1", headers=people.owner.headers)).status_code == 200
    assert (await api.get(f"{base}/export", headers=people.owner.headers)).status_code == 403
    upstream.status = 500
    assert (await api.post(f"{base}/awards", json={}, headers=people.owner.headers)).status_code == 500
    after = proxy_samples((await api.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("cathouse_proxy_requests_total", cat=cat, decision="allowed") == 3
    assert grew("cathouse_proxy_requests_total", cat=cat, decision="no_permission") == 1
    assert grew("cathouse_proxy_requests_total", cat=cat, decision="upstream_error") == 1
    assert grew("cathouse_proxy_upstream_errors_total", cat=cat) == 1
    assert grew("cathouse_proxy_request_duration_seconds_count", cat=cat) == 5
    assert grew("cathouse_proxy_request_duration_seconds_bucket", cat=cat, le="+Inf") == 5
    assert grew("cathouse_proxy_request_duration_seconds_bucket", cat=cat, le="30.0") == 5
    assert 0 < grew("cathouse_proxy_request_duration_seconds_sum", cat=cat) < 5


async def test_bodies_stream_back_and_a_large_one_is_counted(
    api: httpx.AsyncClient, people: People, upstream: Upstream, engine: AsyncEngine
) -> None:
    installation = await installed(
        api,
        people,
        upstream,
        endpoints=[
            {"method": "GET", "path": "/big", "permission": "points:read"},
            {"method": "POST", "path": "/awards", "permission": "points:write"},
        ],
    )
    response = await api.get(f"/api/v1/proxy/{installation}/big", headers=people.owner.headers)
    assert response.status_code == 200
    assert len(response.content) == 16 * 65536
    big = b"y" * 300_000
    posted = await api.post(f"/api/v1/proxy/{installation}/awards", content=big, headers=people.owner.headers)
    assert posted.status_code == 200
    assert upstream.bodies[-1] == big
    rows = await audit_rows(engine, 2)
    assert rows[0]["bytes_out"] == 16 * 65536
    assert rows[1]["bytes_in"] == len(big)


async def test_the_audit_endpoint_shows_owners_their_calls(
    api: httpx.AsyncClient, people: People, upstream: Upstream, engine: AsyncEngine
) -> None:
    installation = await installed(api, people, upstream)
    await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    await audit_rows(engine, 1)
    mine = await api.get("/api/v1/proxy/audit", headers=people.owner.headers)
    assert mine.status_code == 200, mine.text
    assert [i["decision"] for i in mine.json()["items"]] == ["allowed"]
    theirs = await api.get("/api/v1/proxy/audit", headers=people.stranger.headers)
    assert theirs.json()["items"] == []


async def test_while_an_upgrade_waits_for_consent_granted_calls_keep_working(
    api: httpx.AsyncClient, people: People, upstream: Upstream
) -> None:
    installation = await installed(api, people, upstream)
    body = (await api.get(f"/api/v1/installations/{installation}", headers=people.owner.headers)).json()
    slug = body["cat"]["slug"]
    wider = version(
        version="1.1.0",
        base_url=upstream.url,
        webhook_url=None,
        permissions=[*VERSION["permissions"], {"name": "badges:write", "description": "Award badges"}],
        endpoints=[*VERSION["endpoints"], {"method": "POST", "path": "/badges", "permission": "badges:write"}],
    )
    await api.post(f"/api/v1/cats/{slug}/versions", json=wider, headers=people.publisher.headers)
    await api.post(f"/api/v1/cats/{slug}/versions/1.1.0/publish", headers=people.publisher.headers)
    pending = await api.post(
        f"/api/v1/installations/{installation}/upgrade", json={"version": "1.1.0"}, headers=people.owner.headers
    )
    assert pending.json()["status"] == "permissions_pending"

    granted = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    assert granted.status_code == 200
    # The new route belongs to the version still waiting for consent: not callable yet.
    waiting = await api.post(f"/api/v1/proxy/{installation}/badges", json={}, headers=people.owner.headers)
    assert waiting.status_code == 404

    await api.post(f"/api/v1/installations/{installation}/permissions/accept", headers=people.owner.headers)
    accepted = await api.post(f"/api/v1/proxy/{installation}/badges", json={}, headers=people.owner.headers)
    assert accepted.status_code == 200


async def test_with_redis_gone_the_proxy_keeps_answering_and_enforces_again_when_it_returns(
    api: httpx.AsyncClient, app: FastAPI, people: People, upstream: Upstream, private_redis: PrivateRedis
) -> None:
    installation = await installed(api, people, upstream, rate_limit_per_minute=3)
    proxy = app.state.proxy
    original = proxy.limiter
    proxy.limiter = RedisRateLimiter(private_redis.url, retry_interval=0.1)
    url = f"/api/v1/proxy/{installation}/balances/1"
    try:
        assert [(await api.get(url, headers=people.owner.headers)).status_code for _ in range(4)] == [200] * 3 + [429]

        private_redis.kill()
        errors_before = REGISTRY.get_sample_value("cathouse_proxy_ratelimit_store_errors_total") or 0.0
        down = [(await api.get(url, headers=people.owner.headers)).status_code for _ in range(5)]
        assert down == [200] * 5, "fail open: the proxy keeps serving"
        assert (REGISTRY.get_sample_value("cathouse_proxy_ratelimit_store_errors_total") or 0.0) > errors_before

        private_redis.start()  # empty: the counts start again
        statuses: list[int] = []
        for _ in range(50):
            statuses.append((await api.get(url, headers=people.owner.headers)).status_code)
            if statuses[-1] == 429:
                break
            await asyncio.sleep(0.05)
        assert statuses[-1] == 429, statuses
    finally:
        await proxy.limiter.close()
        proxy.limiter = original
