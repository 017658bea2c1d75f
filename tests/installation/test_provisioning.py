"""Provisioning webhooks end to end: a real HTTP server stands in for the cat and checks signatures.

The SSRF tests at the end drive ``provisioning.post`` with a resolver whose answers the test
chooses (``socket.getaddrinfo``, which httpx's own lookups use as well, as a real DNS would be).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cathouse import webhooks
from cathouse.contracts.events.installation import InstallationCreated
from cathouse.contracts.webhooks import Webhook
from cathouse.installation.provisioning import parse_or_skip, post
from cathouse.platform.netguard import BlockedAddress
from cathouse.platform.outbox.relay import Event
from cathouse.platform.settings import Settings
from tests.installation.conftest import FakeCat, People, install_body, publish, wait_for_status
from tests.support import Certificate, free_port, self_signed, serving

INSTALLATIONS = "/api/v1/installations"


async def secrets_of(api: httpx.AsyncClient, people: People, slug: str) -> list[str]:
    response = await api.get(f"/api/v1/cats/{slug}/webhook-secrets", headers=people.publisher.headers)
    assert response.status_code == 200, response.text
    return [s["secret"] for s in response.json()]


async def deliveries(api: httpx.AsyncClient, people: People, installation_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"{INSTALLATIONS}/{installation_id}/deliveries", headers=people.owner.headers)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_the_cat_receives_a_signed_install_and_the_installation_becomes_active(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    active = await wait_for_status(api, people.owner, created["id"], "active")
    assert active["activated_at"]
    [(headers, body)] = fake_cat.received
    webhooks.verify(await secrets_of(api, people, slug), headers, body)  # raises if the signature is wrong
    message = json.loads(body)
    assert message["type"] == "installation.provisioned"
    assert Webhook.model_validate(message).model_dump(mode="json") == message  # the documented body, exactly
    assert message["data"]["installation_id"] == created["id"]
    assert message["data"]["permissions"] == ["points:read", "points:write"]
    assert message["data"]["settings"] == {"team": "blue"}
    assert "sk-live" not in body.decode()  # secrets reach the cat only inside proxied calls
    [delivery] = await deliveries(api, people, created["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("succeeded", 1, 200)
    assert delivery["webhook_id"] == headers["webhook-id"]
    assert delivery["response_excerpt"] == '{"ok":true}'
    assert delivery["last_latency_ms"] >= 0


async def test_a_cat_that_keeps_failing_leaves_the_installation_failed_and_retry_recovers(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    fake_cat.status = 503
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    failed = await wait_for_status(api, people.owner, created["id"], "failed")
    assert "3 attempts" in failed["status_reason"]
    assert "503" in failed["status_reason"]
    [delivery] = await deliveries(api, people, created["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("failed", 3, 503)
    one = await api.get(f"{INSTALLATIONS}/{created['id']}/deliveries/{delivery['id']}", headers=people.owner.headers)
    assert [a["status"] for a in one.json()["history"]] == [503, 503, 503]
    # All retries of one delivery carry the same webhook-id, so the cat can drop duplicates.
    assert len({h["webhook-id"] for h, _ in fake_cat.received}) == 1
    fake_cat.status = 200
    retried = await api.post(f"{INSTALLATIONS}/{created['id']}/retry", headers=people.owner.headers)
    assert retried.json()["status"] == "provisioning"
    await wait_for_status(api, people.owner, created["id"], "active")


async def test_with_the_cat_down_attempts_are_recorded_and_the_install_fails(
    api: httpx.AsyncClient, people: People
) -> None:
    slug = await publish(api, people, webhook_url=f"http://127.0.0.1:{free_port()}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    failed = await wait_for_status(api, people.owner, created["id"], "failed")
    assert "no answer" in failed["status_reason"] or "Connect" in failed["status_reason"]
    [delivery] = await deliveries(api, people, created["id"])
    assert delivery["attempts"] == 3
    assert delivery["last_status"] is None
    assert delivery["last_error"]


async def test_suspend_resume_and_uninstall_tell_the_cat(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    base = f"{INSTALLATIONS}/{created['id']}"
    await wait_for_status(api, people.owner, created["id"], "active")
    await api.post(f"{base}/suspend", json={"reason": "holiday"}, headers=people.owner.headers)
    await api.post(f"{base}/resume", headers=people.owner.headers)
    await api.put(
        f"{base}/permissions",
        json={"permissions": ["points:read", "points:write", "points:export"]},
        headers=people.owner.headers,
    )
    await api.delete(base, headers=people.owner.headers)
    await wait_for_status(api, people.owner, created["id"], "uninstalled")
    types = [json.loads(body)["type"] for _, body in fake_cat.received]
    assert types == [
        "installation.provisioned",
        "installation.suspended",
        "installation.resumed",
        "installation.permissions_changed",
        "installation.uninstalled",
    ]
    changed = json.loads(fake_cat.received[3][1])["data"]
    assert (changed["granted"], changed["revoked"]) == (["points:export"], [])


async def test_a_webhook_being_retried_holds_back_the_next_one_of_its_installation(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    base = f"{INSTALLATIONS}/{created['id']}"
    await wait_for_status(api, people.owner, created["id"], "active")
    fake_cat.answers = [503]  # the suspend's first attempt fails and is retried
    await api.post(f"{base}/suspend", json={"reason": "holiday"}, headers=people.owner.headers)
    await api.post(f"{base}/resume", headers=people.owner.headers)
    for _ in range(200):
        found = await deliveries(api, people, created["id"])
        if len(found) == 3 and all(d["status"] != "pending" for d in found):
            break
        await asyncio.sleep(0.05)
    sent = [(json.loads(body)["type"], headers["webhook-id"]) for headers, body in fake_cat.received]
    assert [kind for kind, _ in sent] == [
        "installation.provisioned",
        "installation.suspended",
        "installation.suspended",
        "installation.resumed",
    ]
    assert sent[1][1] == sent[2][1]  # the same delivery, tried again
    assert all(d["status"] == "succeeded" for d in found)


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    [old] = await secrets_of(api, people, slug)
    rotated = await api.post(
        f"/api/v1/cats/{slug}/webhook-secrets/rotate", json={"overlap_hours": 1}, headers=people.publisher.headers
    )
    assert rotated.status_code == 200, rotated.text
    both = [s["secret"] for s in rotated.json()]
    assert len(both) == 2
    assert old in both
    new = next(s for s in both if s != old)
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    await wait_for_status(api, people.owner, created["id"], "active")
    [(headers, body)] = fake_cat.received
    assert len(headers["webhook-signature"].split()) == 2
    webhooks.verify(old, headers, body)
    webhooks.verify(new, headers, body)
    others = await api.get(f"/api/v1/cats/{slug}/webhook-secrets", headers=people.stranger.headers)
    assert others.status_code == 403


async def test_the_owner_and_the_publisher_see_deliveries_and_ask_for_a_redelivery(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    await wait_for_status(api, people.owner, created["id"], "active")
    of_cat = await api.get(f"{INSTALLATIONS}/deliveries", params={"cat": slug}, headers=people.publisher.headers)
    assert [d["installation_id"] for d in of_cat.json()] == [created["id"]]
    refused = await api.get(f"{INSTALLATIONS}/deliveries", params={"cat": slug}, headers=people.stranger.headers)
    assert refused.status_code == 404
    # Not a slug (a NUL byte PostgreSQL would refuse): a clear 422, not a 500.
    nonsense = await api.get(f"{INSTALLATIONS}/deliveries", params={"cat": "ó\x00"}, headers=people.publisher.headers)
    assert nonsense.status_code == 422, nonsense.text
    assert nonsense.json()["errors"][0]["loc"] == "query.cat"
    [delivery] = await deliveries(api, people, created["id"])
    again = await api.post(
        f"{INSTALLATIONS}/{created['id']}/deliveries/{delivery['id']}/redeliver", headers=people.publisher.headers
    )
    assert again.status_code == 202
    assert again.json()["id"] != delivery["id"]
    for _ in range(100):
        if len(fake_cat.received) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(fake_cat.received) == 2
    assert fake_cat.received[0][1] == fake_cat.received[1][1]  # the same message, a new webhook-id
    assert fake_cat.received[0][0]["webhook-id"] != fake_cat.received[1][0]["webhook-id"]


async def test_a_webhook_to_a_name_arrives_with_that_name_as_host(
    api: httpx.AsyncClient, people: People, fake_cat: FakeCat
) -> None:
    # The request goes to the address the name was checked at; the cat still sees its own name.
    slug = await publish(api, people, webhook_url=f"http://localhost:{fake_cat.port}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    await wait_for_status(api, people.owner, created["id"], "active")
    [(headers, _)] = fake_cat.received
    assert headers["host"] == f"localhost:{fake_cat.port}"


async def test_a_webhook_to_an_internal_address_is_refused_and_the_install_fails_saying_why(
    api: httpx.AsyncClient,
    people: People,
    fake_cat: FakeCat,
    platform_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in production: private addresses refused (the other tests allow them, for the fake cat).
    monkeypatch.setattr(platform_settings.installation, "webhook_allow_private", False)
    slug = await publish(api, people, webhook_url=f"{fake_cat.url}/hooks")
    created = (await api.post(INSTALLATIONS, json=install_body(slug), headers=people.owner.headers)).json()
    failed = await wait_for_status(api, people.owner, created["id"], "failed")
    assert "3 attempts" in failed["status_reason"]
    assert "127.0.0.1 resolves to an address that is not public" in failed["status_reason"]
    [delivery] = await deliveries(api, people, created["id"])
    assert (delivery["status"], delivery["last_status"]) == ("failed", None)
    assert delivery["last_error"].startswith("BlockedAddress:")
    assert fake_cat.received == [], "nothing was sent to the internal address"


# -- the address checked is the address connected to ------------------------------------------

PUBLIC = "93.184.215.14"  # any public address: the test answers for it, nothing goes out


@dataclass
class Recorder:
    """A server on the real loopback network that records the requests it gets."""

    port: int
    received: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def internal() -> AsyncIterator[Recorder]:
    """A service inside the platform's network, which no webhook may reach."""
    recorder = Recorder(free_port())

    async def anything(request: Request) -> Response:
        recorder.received.append(dict(request.headers))
        return Response(status_code=200)

    async with serving(Starlette(routes=[Route("/hooks", anything, methods=["POST"])]), recorder.port):
        yield recorder


class Internet(httpx.AsyncBaseTransport):
    """The public internet as far as a test can have one: PUBLIC answers here; other addresses
    and names go over the real network, with httpx resolving names itself."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self.real = httpx.AsyncHTTPTransport(verify=verify)
        self.at_public: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC:
            self.at_public.append(request)
            return httpx.Response(204)
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


@contextlib.contextmanager
def dns(answers: Mapping[str, Iterator[list[str]]]) -> Iterator[list[str]]:
    """Answer for the names in ``answers`` (the next answer at each lookup), the real resolver for
    the rest; yields the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio (under httpx) asks in bytes
        if name not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in next(answers[name])]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield asked


def always(*addresses: str) -> Iterator[list[str]]:
    return itertools.repeat(list(addresses))


def rebinding() -> Iterator[list[str]]:
    """A name that passes the check once, then points inside (DNS rebinding)."""
    yield [PUBLIC]
    yield from always("127.0.0.1")


async def test_a_name_that_points_inside_after_the_check_never_reaches_the_inside(internal: Recorder) -> None:
    url = f"http://cat.example:{internal.port}/hooks"
    internet = Internet()
    with dns({"cat.example": rebinding()}) as asked:
        async with httpx.AsyncClient(transport=internet) as http:
            response = await post(http, url, content=b"{}", headers={}, within=2.0, allow_private=False)
    assert internal.received == [], "the second answer (inside) was never used"
    assert response.status_code == 204
    assert [r.headers["host"] for r in internet.at_public] == [f"cat.example:{internal.port}"]
    assert asked == ["cat.example"], "the name was looked up once, for the check"


async def test_a_name_that_points_inside_when_checked_is_refused(internal: Recorder) -> None:
    url = f"http://inside.example:{internal.port}/hooks"
    with dns({"inside.example": always("127.0.0.1")}), pytest.raises(BlockedAddress, match="not public"):
        async with httpx.AsyncClient(transport=Internet()) as http:
            await post(http, url, content=b"{}", headers={}, within=2.0, allow_private=False)
    assert internal.received == []


async def test_an_address_that_refuses_the_connection_passes_to_the_next_checked_one(fake_cat: FakeCat) -> None:
    # As "localhost" often answers ::1 first while a developer's cat listens on 127.0.0.1 only.
    with dns({"cat.test": always("127.0.0.2", "127.0.0.1")}) as asked:
        async with httpx.AsyncClient() as http:
            url = f"http://cat.test:{fake_cat.port}/hooks"
            response = await post(http, url, content=b"{}", headers={}, within=2.0, allow_private=True)
    assert response.status_code == 200
    assert [headers["host"] for headers, _ in fake_cat.received] == [f"cat.test:{fake_cat.port}"]
    assert asked == ["cat.test"]


@dataclass
class TLSServer:
    port: int
    names: list[str | None] = field(default_factory=list)  # the SNI name of each connection
    hosts: list[str] = field(default_factory=list)  # the Host header of each request


@pytest.fixture
async def tls_server(certificate: Certificate) -> AsyncIterator[TLSServer]:
    """An HTTPS server on loopback with a certificate for ``cat.test``, answering 200 to each request."""
    context = certificate.server
    server = TLSServer(free_port())
    context.sni_callback = lambda sock, name, ctx: server.names.append(name)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower().split("\r\n")
                fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
                server.hosts.append(fields["host"])
                await reader.readexactly(int(fields.get("content-length", "0")))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    listening = await asyncio.start_server(on_connect, "127.0.0.1", server.port, ssl=context)
    async with listening:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def test_over_tls_the_certificate_is_checked_for_the_name_not_the_address(
    tls_server: TLSServer, certificate: Certificate
) -> None:
    pem = certificate.pem
    trusting = ssl.create_default_context(cadata=pem.decode())
    loopback = {"cat.test": always("127.0.0.1"), "dog.test": always("127.0.0.1")}
    with dns(loopback):
        async with httpx.AsyncClient(transport=Internet(verify=trusting)) as http:
            ok = await post(
                http,
                f"https://cat.test:{tls_server.port}/hooks",
                content=b"{}",
                headers={},
                within=2.0,
                allow_private=True,
            )
            # Same address, a name the certificate does not cover: the connection just verified
            # for cat.test must not carry it.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(
                    http,
                    f"https://dog.test:{tls_server.port}/hooks",
                    content=b"{}",
                    headers={},
                    within=2.0,
                    allow_private=True,
                )
    assert ok.status_code == 200
    assert tls_server.names == ["cat.test", "dog.test"]
    assert tls_server.hosts == [f"cat.test:{tls_server.port}"]


@pytest.mark.parametrize(("event_type", "version"), [(InstallationCreated.type, 2), ("installation.teleported", 1)])
def test_an_event_this_code_has_no_model_for_is_skipped_not_retried(event_type: str, version: int) -> None:
    # None: the worker returns and the relay acknowledges it (an exception would have it retried).
    unknown = Event(
        id=str(uuid.uuid4()),
        seq=1,
        aggregate_type="installation",
        aggregate_id=str(uuid.uuid4()),
        event_type=event_type,
        schema_version=version,
        payload={"installation_id": str(uuid.uuid4())},
        occurred_at=datetime.now(UTC),
        request_id=None,
        attempts=0,
    )
    assert parse_or_skip(unknown) is None
