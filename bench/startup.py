"""Cold start to healthy, and idle memory, of the one-process platform.

The reference, measured in the same run on the same machine, is a bare uvicorn serving a
one-route ASGI app: the floor any Python web service pays. Figures are medians of a few
runs; the ratios are what to compare between machines.

    make bench        (or: .venv/bin/python bench/startup.py --runs 5)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import psutil

REFERENCE_APP = textwrap.dedent("""
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.perf_counter()
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"{url} not healthy within {timeout}s")


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster (its command line names the data dir) and its worker processes."""
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmdline):
            pids.append(proc.pid)
            pids.extend(child.pid for child in proc.children(recursive=True))
    return pids


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_reference(workdir: Path) -> tuple[float, float]:
    (workdir / "ref_app.py").write_text(REFERENCE_APP)
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ref_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=workdir,
    )
    try:
        ready = wait_healthy(f"http://127.0.0.1:{port}/", proc)
        time.sleep(1.0)
        return ready - started, rss_mib([proc.pid])
    finally:
        stop(proc)


def measure_cathouse(data_dir: Path) -> tuple[float, float, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_DATA_DIR": str(data_dir), "CATHOUSE_LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cathouse", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", proc)
        time.sleep(2.0)  # idle: the relay polls, nothing else happens
        return ready - started, rss_mib([proc.pid]), rss_mib(postgres_pids(data_dir))
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cathouse-bench-") as tmp:
        workdir = Path(tmp)
        ref = [measure_reference(workdir) for _ in range(args.runs)]
        cold, warm = [], []
        for n in range(args.runs):
            data_dir = workdir / f"data-{n}"
            cold.append(measure_cathouse(data_dir))  # a new data dir: initdb + migrations
            warm.append(measure_cathouse(data_dir))  # the same data dir again

    ref_start = statistics.median(r[0] for r in ref)
    ref_rss = statistics.median(r[1] for r in ref)
    cold_start = statistics.median(r[0] for r in cold)
    warm_start = statistics.median(r[0] for r in warm)
    idle_rss = statistics.median(r[1] for r in warm)
    pg_rss = statistics.median(r[2] for r in warm)

    print(f"runs: {args.runs} (medians)")
    print(f"reference (bare uvicorn, one route): start {ref_start:.2f} s, RSS {ref_rss:.0f} MiB")
    print(f"cathouse up, cold (new data dir):    start {cold_start:.2f} s  = {cold_start / ref_start:.1f}x reference")
    print(f"cathouse up, warm (same data dir):   start {warm_start:.2f} s  = {warm_start / ref_start:.1f}x reference")
    print(f"cathouse up, idle RSS (app process): {idle_rss:.0f} MiB = {idle_rss / ref_rss:.1f}x reference")
    print(f"embedded PostgreSQL, idle RSS (all its processes): {pg_rss:.0f} MiB")


if __name__ == "__main__":
    main()
