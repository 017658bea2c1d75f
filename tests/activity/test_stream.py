"""The live stream over a real HTTP server: delivered as it happens, filtered per caller, resumed from
Last-Event-ID without gaps, kept alive, and ended on disconnect and on shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import REGISTRY

from tests.activity.conftest import Platform, install
from tests.installation.conftest import People, publish, version
from tests.support import free_port, serving


@dataclass
class Frame:
    id: int | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


class Reader:
    """Reads a text/event-stream one frame at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def frame(self, within: float = 10.0) -> Frame:
        frame = Frame()
        async with asyncio.timeout(within):
            async for line in self.lines:
                if not line:
                    return frame
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    frame.comments.append(value)
                elif name == "id":
                    frame.id = int(value)
                elif name == "data":
                    frame.data = json.loads(value)
                elif name == "retry":
                    frame.retry = int(value)
        raise EOFError("the stream ended")

    async def entry(self, within: float = 10.0) -> Frame:
        """The next frame that carries an entry (comments and retry frames are passed over)."""
        while True:
            frame = await self.frame(within)
            if frame.id is not None:
                return frame


@asynccontextmanager
async def server(live: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """The running platform app on a real port (its lifespan is already running)."""
    port = free_port()
    async with serving(live.app, port), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http


@asynccontextmanager
async def stream(http: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[Reader]:
    async with http.stream("GET", "/api/v1/activity/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = Reader(response)
        first = await reader.frame()
        assert first.retry is not None  # sent before anything else: the stream is subscribed
        yield reader


async def new_version(live: Platform, people: People, slug: str, label: str) -> None:
    body = version(version=label)
    added = await live.api.post(f"/api/v1/cats/{slug}/versions", json=body, headers=people.publisher.headers)
    assert added.status_code == 201, added.text
    done = await live.api.post(f"/api/v1/cats/{slug}/versions/{label}/publish", headers=people.publisher.headers)
    assert done.status_code == 200, done.text


async def test_the_stream_delivers_new_entries_and_resumes_from_last_event_id_without_gaps(
    live: Platform, people: People
) -> None:
    slug = await publish(live.api, people)
    await live.settle()
    async with server(live) as http:
        async with stream(http, people.stranger.headers) as reader:
            await new_version(live, people, slug, "1.1.0")
            received = await reader.entry()
            assert received.data is not None
            assert (received.data["type"], received.data["data"]["version"]) == ("cat.version_published", "1.1.0")
            assert received.data["cat"]["slug"] == slug
        # Disconnected: two more happen meanwhile.
        await new_version(live, people, slug, "1.2.0")
        await new_version(live, people, slug, "1.3.0")
        await live.settle()

        resume = {**people.stranger.headers, "Last-Event-ID": str(received.id)}
        async with stream(http, resume) as reader:
            missed = [await reader.entry(), await reader.entry()]
            assert [f.data["data"]["version"] for f in missed if f.data] == ["1.2.0", "1.3.0"]
            ids = [f.id or 0 for f in (received, *missed)]
            assert ids == sorted(ids)
            assert len(set(ids)) == 3
            # Then live again, with nothing in between.
            await new_version(live, people, slug, "1.4.0")
            after = await reader.entry()
            assert after.data is not None
            assert after.data["data"]["version"] == "1.4.0"
            assert after.id is not None
            assert missed[-1].id is not None
            assert after.id > missed[-1].id


async def test_each_caller_sees_public_entries_and_only_their_own_details(live: Platform, people: People) -> None:
    slug = await publish(live.api, people)
    await live.settle()
    async with (
        server(live) as http,
        stream(http, people.owner.headers) as owner,
        stream(http, people.stranger.headers) as stranger,
    ):
        await install(live.api, people, slug, name="Secret Project")
        mine = await owner.entry()
        theirs = await stranger.entry()
        assert mine.data is not None
        assert theirs.data is not None
        assert mine.data["type"] == theirs.data["type"] == "installation.created"
        assert mine.data["user"]["id"] == people.owner.id
        assert mine.data["data"]["name"] == "Secret Project"
        assert theirs.data["user"] is None
        assert "name" not in theirs.data["data"]
        # The owner's installation then moves on: only the owner hears of it.
        moved = await owner.entry()
        assert moved.data is not None
        assert moved.data["type"] == "installation.status_changed"
        await new_version(live, people, slug, "2.0.0")
        public = await stranger.entry()
        assert public.data is not None
        assert public.data["type"] == "cat.version_published"


async def test_an_idle_stream_gets_heartbeats_and_a_closed_one_is_forgotten(live: Platform, people: People) -> None:
    def streams() -> float:
        return REGISTRY.get_sample_value("cathouse_activity_streams") or 0.0

    before = streams()
    async with server(live) as http:
        async with stream(http, people.stranger.headers) as reader:
            assert streams() == before + 1
            beat = await reader.frame(within=live.settings.activity.stream_heartbeat + 5)
            assert beat.comments == ["keep-alive"]
            assert beat.id is None
        deadline = time.monotonic() + 5
        while streams() != before and time.monotonic() < deadline:  # noqa: ASYNC110 - a gauge offers no event
            await asyncio.sleep(0.05)
        assert streams() == before


async def test_a_shutting_down_server_ends_its_streams(live: Platform, people: People) -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        async with serving(live.app, port):
            request = http.build_request("GET", "/api/v1/activity/stream", headers=people.stranger.headers)
            response = await http.send(request, stream=True)
            reader = Reader(response)
            assert (await reader.frame()).retry is not None
            stopping = time.monotonic()
        # uvicorn waits for open responses before it stops: the stream must have ended by itself.
        assert time.monotonic() - stopping < 5
        rest = [line async for line in reader.lines]
        assert all(not line or line.startswith(":") for line in rest)
        await response.aclose()


async def test_the_stream_refuses_strangers_and_bad_ids(live: Platform, people: People) -> None:
    assert (await live.api.get("/api/v1/activity/stream")).status_code == 401
    bad = await live.api.get("/api/v1/activity/stream", headers={**people.owner.headers, "Last-Event-ID": "x1"})
    assert bad.status_code == 422
    everyone = await live.api.get("/api/v1/activity/stream", params={"everyone": "true"}, headers=people.owner.headers)
    assert everyone.status_code == 403
