"""``cathouse up``, ``cathouse serve`` and ``cathouse relay``: running the platform."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx
import typer
import uvicorn
from fastapi import FastAPI
from rich.table import Table

from cathouse.cli.catalog import demo_directory, print_report, sync_directory
from cathouse.cli.database import database_settings
from cathouse.cli.migrate import migrate_or_exit
from cathouse.cli.output import err, out
from cathouse.platform import workers
from cathouse.platform.corked import CorkedHttpToolsProtocol
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings
from cathouse.services import SERVICES, api_owners, create_platform_app, create_service_app, registry
from cathouse.web.app import NAME as WEB
from cathouse.web.app import create_web_app

STOP_GRACE_SECONDS = 10.0
# uvicorn's exit code for a server that could not start (its port taken, its lifespan failed).
STARTUP_FAILURE = 3


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# The service a worker process serves, for the factory it calls (``cathouse serve --workers``).
WORKER_SERVICE_ENV = "CATHOUSE_WORKER_SERVICE"
# Services that count rate limits in memory when Redis is not configured: as several processes,
# each would allow the whole limit.
COUNTS_IN_REDIS = frozenset({"auth", "proxy"})


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, calling ``on_ready`` once its socket listens: not before."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self.on_ready()


def _serve(
    app: FastAPI | str,
    host: str,
    port: int,
    settings: Settings,
    workers: int = 1,
    on_ready: Callable[[], None] | None = None,
) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with SIGTERM's
    # default action that would kill us before the embedded database is stopped.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": CorkedHttpToolsProtocol,
        "log_config": None,  # keeps uvicorn's loggers routed through ours (JSON lines)
        "log_level": settings.log_level.lower(),
        # The platform writes its own access log (platform/access.py): route templates, no query strings.
        "access_log": False,
        "server_header": False,  # what runs the platform is nobody's business
        "factory": isinstance(app, str),
    }
    if workers > 1 or on_ready is None:
        uvicorn.run(app, workers=workers if workers > 1 else None, **options)
        return
    # What uvicorn.run does for one process, with a server that says when it listens.
    server = _AnnouncingServer(uvicorn.Config(app, **options), on_ready)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stopped as asked
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def worker_app() -> FastAPI:
    """What each worker process of ``cathouse serve --workers`` serves: the service its parent
    named, over the database its parent found (both handed down in the environment)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_service_app(os.environ[WORKER_SERVICE_ENV], settings)


def web_worker_app() -> FastAPI:
    """What each worker process of ``cathouse serve web --workers`` serves."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_web_app(settings, _services_at(settings, settings.host))


def _services_at(settings: Settings, host: str) -> dict[str, str]:
    """Where the pages served alone call each part of the API when no gateway is named
    (``CATHOUSE_WEB__API_URL`` unset): its service on ``host``, at the service's port."""
    return {prefix: _reachable(host, settings.service(name).port) for prefix, name in api_owners().items()}


def _banner(rows: list[tuple[str, str]], docs: list[str]) -> None:
    """What ``up`` is for, on stdout; printed once every listed address answers."""
    table = Table("service", "listening on", title="Cat House is up")
    for name, url in rows:
        table.add_row(name, url)
    out.print(table)
    for url in docs:
        out.print(f"API docs: [link={url}]{url}[/link]")
    out.print("Press Ctrl-C to stop.")


def up(
    split: bool = typer.Option(False, "--split", help="Run each service as its own process on its own port."),
    host: str | None = typer.Option(None, help="Interface to listen on (default: CATHOUSE_HOST)."),
    port: int | None = typer.Option(None, help="Port of the one-process platform (default: CATHOUSE_PORT)."),
    demo: bool = typer.Option(False, "--demo", help="Sync the example cats first, for a populated catalog."),
) -> None:
    """Run the whole platform: the embedded PostgreSQL unless a database is configured, the
    migrations, every service and the outbox relay."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    host = host or settings.host
    with database_settings(settings) as live:
        migrate_or_exit(live)
        if demo:
            outcomes = asyncio.run(sync_directory(live, demo_directory(), show_progress=False))
            print_report(outcomes)
        if split:
            _run_split(live, host)
        else:
            bind = port or settings.port
            base = f"http://{host}:{bind}"
            docs = [f"{base}/api/v1/docs"] if live.docs_enabled else []
            rows = [("all services", base), ("web pages", f"{base}/")]
            _serve(create_platform_app(live), host, bind, live, on_ready=lambda: _banner(rows, docs))


def serve(
    service: str = typer.Argument(help=f"One of: {', '.join([*SERVICES, WEB])}."),
    host: str | None = typer.Option(None, help="Interface to listen on (default: CATHOUSE_HOST)."),
    port: int | None = typer.Option(None, help="Port (default: the service's own, e.g. 8005 for auth)."),
    workers: int = typer.Option(
        1,
        min=1,
        envvar="CATHOUSE_WORKERS",
        help="Processes sharing the port, one event loop each: a service's requests spread over cores.",
    ),
) -> None:
    """Run one service (as a container does). It does not migrate: run `cathouse migrate` first."""
    if service not in SERVICES and service != WEB:
        raise typer.BadParameter(f"no service named {service!r}; choose from {', '.join([*SERVICES, WEB])}")
    settings = get_settings()
    if service == WEB:
        # The pages hold no database: they call the API at CATHOUSE_WEB__API_URL or, unset, each
        # service at its port on the address they listen on (as `cathouse up --split` runs them).
        configure_logging(settings.log_level, json_lines=settings.log_json)
        bind_host, bind_port = host or settings.host, port or settings.web.port
        if workers == 1:
            _serve(create_web_app(settings, _services_at(settings, bind_host)), bind_host, bind_port, settings)
            return
        os.environ["CATHOUSE_HOST"] = bind_host  # each worker maps the services on the same address
        _serve(f"{__name__}:web_worker_app", bind_host, bind_port, settings, workers=workers)
        return
    if workers > 1 and service in COUNTS_IN_REDIS and settings.redis_url is None:
        raise typer.BadParameter(
            f"{service} shares its rate limits between processes through Redis: "
            "set CATHOUSE_REDIS_URL, or run one worker",
            param_hint="--workers",
        )
    configure_logging(settings.log_level, json_lines=settings.log_json)
    with database_settings(settings) as live:
        bind_host, bind_port = host or live.host, port or live.service(service).port
        if workers == 1:
            _serve(create_service_app(service, live), bind_host, bind_port, live)
            return
        # Each worker builds its own app from the environment: the database found here (the
        # embedded one is joined, not started again) and the service to serve.
        assert live.database_url is not None
        os.environ["CATHOUSE_DATABASE_URL"] = live.database_url.get_secret_value()
        os.environ[WORKER_SERVICE_ENV] = service
        os.environ["CATHOUSE_WORKERS"] = str(workers)  # each worker then takes its own metrics port
        _serve(f"{__name__}:worker_app", bind_host, bind_port, live, workers=workers)


def relay() -> None:
    """Run the outbox relay alone (a worker process when services run split)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        factories = [s.worker for s in SERVICES.values() if s.worker is not None]
        async with workers.running(live, factories, registry=registry()):
            await stop.wait()

    with database_settings(settings) as live:
        asyncio.run(go(live))


def _reachable(host: str, port: int) -> str:
    """A base URL that reaches a server listening on ``host``: a wildcard address is reached on loopback."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (recognised, not bound)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _run_split(settings: Settings, host: str) -> None:
    """One child process per service plus the relay; any signal or death stops them all."""
    assert settings.database_url is not None
    env = {**os.environ, "CATHOUSE_DATABASE_URL": settings.database_url.get_secret_value()}
    if "jwks_url" not in settings.tokens.model_fields_set:
        # The others verify tokens with the keys of the auth process started here, wherever its
        # port was moved (CATHOUSE_AUTH__PORT): the default names 8005.
        env["CATHOUSE_TOKENS__JWKS_URL"] = f"{_reachable(host, settings.auth.port)}/api/v1/auth/.well-known/jwks.json"
    cli = [sys.executable, "-m", "cathouse"]
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name in [*SERVICES, WEB]:
        port = _port(settings, name)
        children[name] = subprocess.Popen([*cli, "serve", name, "--host", host, "--port", str(port)], env=env)
    children["relay"] = subprocess.Popen([*cli, "relay"], env=env)

    urls = {name: f"http://{host}:{_port(settings, name)}" for name in [*SERVICES, WEB]}
    starting = set(urls)  # the banner waits until each of them answers its health check
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            dead = [name for name, proc in children.items() if proc.poll() is not None]
            if dead:
                err.print(f"[red]{', '.join(dead)} stopped unexpectedly; stopping the rest[/red]")
                break
            if starting:
                starting -= {name for name in starting if _answers(settings, host, name)}
                if not starting:
                    apis = [url for name, url in urls.items() if name != WEB]
                    docs = [f"{url}/api/v1/docs" for url in apis] if settings.docs_enabled else []
                    _banner(list(urls.items()), docs)
            time.sleep(0.2)
    finally:
        _stop_children(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stopping:
        raise typer.Exit(1)


def _port(settings: Settings, name: str) -> int:
    return settings.web.port if name == WEB else settings.service(name).port


def _answers(settings: Settings, host: str, service: str) -> bool:
    """Whether ``service`` answers its health check (on loopback when it listens everywhere)."""
    address = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)  # noqa: S104
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    try:
        health = httpx.get(f"http://{address}:{_port(settings, service)}/api/v1/health", timeout=1.0)
    except httpx.HTTPError:
        return False
    return health.status_code == 200


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(serve)
    app.command()(relay)


__all__ = ["register"]
