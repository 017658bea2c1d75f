"""Running the test OAuth provider (``provider.py``) as a process, and walking its consent page."""

from __future__ import annotations

import contextlib
import html
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
ALL_GRANTS = ("authorization_code", "refresh_token", "client_credentials")
FORM_ACTION = re.compile(r'<form method="post" action="([^"]*)"')
STARTUP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Provider:
    url: str

    @property
    def authorization_url(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def revocation_url(self) -> str:
        return f"{self.url}/revoke"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def _admin(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        if body is None:
            response = httpx.get(f"{self.url}/_admin/{path}", timeout=10)
        else:
            response = httpx.post(f"{self.url}/_admin/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response

    def register_client(
        self,
        redirect_uri: str,
        scope: str = "points:read points:write",
        grant_types: tuple[str, ...] | list[str] = ALL_GRANTS,
    ) -> tuple[str, str]:
        """A new client: its ``(client_id, client_secret)``."""
        body = {"redirect_uris": [redirect_uri], "scope": scope, "grant_types": list(grant_types)}
        data = self._admin("clients", body).json()
        return data["client_id"], data["client_secret"]

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("stats").json())

    def issued(self) -> list[str]:
        """Every access and refresh token the provider ever issued."""
        data = self._admin("issued").json()
        return [*data["access"], *data["refresh"]]

    def revoke_grants(self, sub: str) -> None:
        """Every token of ``sub`` revoked, as when the user removes the app at the provider."""
        self._admin("revoke-grants", {"sub": sub})

    def token_mode(self, mode: str) -> None:
        """``normal``, ``error500``, ``garbage`` or ``slow``: how the token endpoint answers."""
        self._admin("token-mode", {"mode": mode})

    def reset(self) -> None:
        """Counters and token mode back to the start; clients and tokens stay."""
        self._admin("reset", {})


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_provider(access_ttl: float = 5) -> Iterator[Provider]:
    """The provider in a process of its own, up and answering, stopped at the end."""
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}")
    with tempfile.TemporaryDirectory(prefix="oauth-provider-") as tmp:
        log_path = Path(tmp) / "provider.log"
        command = [sys.executable, "-m", "tests.installation.oauth.provider"]
        command += ["--port", str(port), "--access-ttl", str(access_ttl)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_healthy(provider, process, log_path)
            yield provider
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(provider: Provider, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"OAuth provider exited with {process.returncode}:\n{_log_tail(log_path)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{provider.url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"OAuth provider not up after {STARTUP_TIMEOUT}s:\n{_log_tail(log_path)}")


def _consent_form(page: httpx.Response, authorize_url: str) -> str:
    if page.status_code != 200:
        raise AssertionError(f"consent page answered {page.status_code}: {page.text[:500]}")
    match = FORM_ACTION.search(page.text)
    if match is None:
        raise AssertionError(f"no consent form on the page: {page.text[:500]}")
    return urljoin(authorize_url, html.unescape(match.group(1)))


def _callback(answer: httpx.Response) -> str:
    if answer.status_code != 302:
        raise AssertionError(f"consent answered {answer.status_code}, not a redirect: {answer.text[:500]}")
    return answer.headers["location"]


def _decision(allow: bool, username: str) -> dict[str, str]:
    return {"username": username, "confirm": "yes" if allow else "no"}


def consent(client: httpx.Client, authorize_url: str, *, allow: bool = True, username: str = "alice") -> str:
    """What a user does on the consent page: the callback URL it sends the browser to.

    A request the provider refuses outright with a redirect (an error for the client) returns
    that redirect's URL without a form being shown.
    """
    page = client.get(authorize_url, follow_redirects=False)
    if page.status_code == 302:
        return page.headers["location"]
    action = _consent_form(page, authorize_url)
    return _callback(client.post(action, data=_decision(allow, username), follow_redirects=False))


async def aconsent(
    client: httpx.AsyncClient, authorize_url: str, *, allow: bool = True, username: str = "alice"
) -> str:
    """``consent`` for an async client."""
    page = await client.get(authorize_url, follow_redirects=False)
    if page.status_code == 302:
        return page.headers["location"]
    action = _consent_form(page, authorize_url)
    return _callback(await client.post(action, data=_decision(allow, username), follow_redirects=False))
