"""The access log as an operator reads it: one JSON line per request, naming the route by its
template, and nothing the caller sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cathouse.platform.access import AccessLog
from cathouse.platform.settings import Settings
from cathouse.services import create_service_app
from tests.auth.conftest import signed_up

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
SECRET = "s3cr3t-in-the-query-string"


def access_lines(captured: str) -> list[dict[str, Any]]:
    """Every access-log line of stderr; each line of it must be one JSON document."""
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "cathouse.access"]


async def test_one_line_per_request_with_the_route_template_and_the_user_and_no_secret(
    auth: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    account = await signed_up(auth)
    capsys.readouterr()
    headers = {**account.headers, "X-Request-ID": "access-log-1", "Cookie": f"session={SECRET}"}
    me = await auth.get(f"/api/v1/users/me?token={SECRET}&page=2", headers=headers)
    assert me.status_code == 200
    stranger = uuid.uuid4()
    missing = await auth.get(f"/api/v1/users/{stranger}?api_key={SECRET}", headers={"X-Request-ID": "access-log-2"})
    assert missing.status_code == 401
    captured = capsys.readouterr().err

    first, second = access_lines(captured)
    assert first["method"] == "GET"
    assert first["route"] == "/api/v1/users/me"
    assert first["status"] == 200
    assert first["request_id"] == "access-log-1"
    assert first["user_id"] == account.id
    assert first["service"] == "auth"
    assert first["level"] == "INFO"
    assert 0 < first["duration_ms"] < 10_000
    assert second["route"] == "/api/v1/users/{user_id}"  # the template, not the id asked for
    assert second["status"] == 401
    assert second["user_id"] is None
    for secret in (SECRET, account.access_token, str(stranger), "page=2"):
        assert secret not in captured


async def test_the_access_log_can_be_turned_off(
    settings: Settings, app_client: OpenClient, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = settings.model_copy(update={"access_log": False})
    async with app_client(create_service_app("auth", quiet)) as client:
        capsys.readouterr()
        assert (await client.get("/api/v1/health")).status_code == 200
    assert access_lines(capsys.readouterr().err) == []


def test_a_line_stays_one_json_document_whatever_its_strings_hold(capsys: pytest.CaptureFixture[str]) -> None:
    AccessLog('svc "a"')('GE"T\n', "/x/{y}\\", 418, 0.0015, 'id"\n', uuid.UUID(int=7))
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert (entry["service"], entry["method"], entry["route"], entry["request_id"]) == (
        'svc "a"',
        'GE"T\n',
        "/x/{y}\\",
        'id"\n',
    )
    assert (entry["status"], entry["duration_ms"], entry["user_id"]) == (418, 1.5, str(uuid.UUID(int=7)))
