"""What every benchmark needs to run the platform as a real process and clean up after it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx
import psutil

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_platform(
    data_dir: Path, port: int, *, extra_env: Mapping[str, str] | None = None, stderr: IO[bytes] | int | None = None
) -> subprocess.Popen[bytes]:
    """``cathouse up`` on ``port`` over an embedded PostgreSQL in ``data_dir``, with none of
    the caller's CATHOUSE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_DATA_DIR": str(data_dir), "CATHOUSE_LOG_LEVEL": "WARNING", **(extra_env or {})})
    return subprocess.Popen(
        [sys.executable, "-m", "cathouse", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if stderr is None else stderr,
    )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
    """Poll ``url`` until it answers 200; the perf_counter time at which it did."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"{url} not healthy within {timeout}s")


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster (its command line names the data dir) and its worker processes."""
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.info["cmdline"] or []
            if any(str(data_dir) in part for part in cmdline):
                pids.append(proc.pid)
                pids.extend(child.pid for child in proc.children(recursive=True))
    return pids


def stop(proc: subprocess.Popen[bytes], data_dir: Path | None = None) -> None:
    """SIGTERM (cathouse then stops its embedded PostgreSQL), a kill after 30 s, and an end
    to any PostgreSQL process of ``data_dir`` that outlived it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if data_dir is None:
        return
    leftovers = []
    for pid in postgres_pids(data_dir):
        with contextlib.suppress(psutil.Error):
            leftovers.append(psutil.Process(pid))
    if leftovers:
        print(f"warning: {len(leftovers)} PostgreSQL processes outlived cathouse; stopping them", file=sys.stderr)
        for leftover in leftovers:
            with contextlib.suppress(psutil.Error):
                leftover.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=10)
        for leftover in alive:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
