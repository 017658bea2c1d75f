"""``cathouse up``, ``cathouse serve`` and ``cathouse relay``: running the platform."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from types import FrameType

import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.table import Table

from cathouse.cli.catalog import demo_directory, print_report, sync_directory
from cathouse.cli.database import database_settings
from cathouse.cli.migrate import apply_all
from cathouse.platform import workers
from cathouse.platform.corked import CorkedHttpToolsProtocol
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings
from cathouse.services import SERVICES, create_platform_app, create_service_app

console = Console(stderr=True)
STOP_GRACE_SECONDS = 10.0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# The service a worker process serves, for the factory it calls (``cathouse serve --workers``).
WORKER_SERVICE_ENV = "CATHOUSE_WORKER_SERVICE"
# Services that count rate limits in memory when Redis is not configured: as several processes,
# each would allow the whole limit.
COUNTS_IN_REDIS = frozenset({"auth", "proxy"})


def _serve(app: FastAPI | str, host: str, port: int, settings: Settings, workers: int = 1) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with SIGTERM's
    # default action that would kill us before the embedded database is stopped.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # log_config=None keeps uvicorn's loggers routed through ours (JSON lines).
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=CorkedHttpToolsProtocol,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,  # what runs the platform is nobody's business
        workers=workers if workers > 1 else None,
        factory=isinstance(app, str),
    )


def worker_app() -> FastAPI:
    """What each worker process of ``cathouse serve --workers`` serves: the service its parent
    named, over the database its parent found (both handed down in the environment)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_service_app(os.environ[WORKER_SERVICE_ENV], settings)


def _banner(rows: list[tuple[str, str]], docs: list[str]) -> None:
    table = Table("service", "listening on", title="Cat House is up")
    for name, url in rows:
        table.add_row(name, url)
    console.print(table)
    for url in docs:
        console.print(f"API docs: [link={url}]{url}[/link]")
    console.print("Press Ctrl-C to stop.")


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
        asyncio.run(apply_all(live))
        if demo:
            outcomes = asyncio.run(sync_directory(live, demo_directory(), show_progress=False))
            print_report(outcomes)
        if split:
            _run_split(live, host)
        else:
            bind = port or settings.port
            base = f"http://{host}:{bind}"
            _banner([("all services", base)], [f"{base}/api/v1/docs"])
            _serve(create_platform_app(live), host, bind, live)


def serve(
    service: str = typer.Argument(help=f"One of: {', '.join(SERVICES)}."),
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
    if service not in SERVICES:
        raise typer.BadParameter(f"no service named {service!r}; choose from {', '.join(SERVICES)}")
    settings = get_settings()
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
        async with workers.running(live, factories):
            await stop.wait()

    with database_settings(settings) as live:
        asyncio.run(go(live))


def _run_split(settings: Settings, host: str) -> None:
    """One child process per service plus the relay; any signal or death stops them all."""
    assert settings.database_url is not None
    env = {**os.environ, "CATHOUSE_DATABASE_URL": settings.database_url.get_secret_value()}
    cli = [sys.executable, "-m", "cathouse"]
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        port = settings.service(name).port
        children[name] = subprocess.Popen([*cli, "serve", name, "--host", host, "--port", str(port)], env=env)
    children["relay"] = subprocess.Popen([*cli, "relay"], env=env)

    _banner(
        [(name, f"http://{host}:{settings.service(name).port}") for name in SERVICES],
        [f"http://{host}:{settings.service(name).port}/api/v1/docs" for name in SERVICES],
    )
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            dead = [name for name, proc in children.items() if proc.poll() is not None]
            if dead:
                console.print(f"[red]{', '.join(dead)} stopped unexpectedly; stopping the rest[/red]")
                break
            time.sleep(0.2)
    finally:
        _stop_children(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stopping:
        raise typer.Exit(1)


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
