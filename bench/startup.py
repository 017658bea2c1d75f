"""Cold start to healthy, and idle memory, of the one-process platform.

The reference, measured in the same run on the same machine, is a bare uvicorn serving a
one-route ASGI app: the floor any Python web service pays. Figures are medians of a few
runs; the ratios are what to compare between machines.

    make bench        (or: .venv/bin/python bench/startup.py --runs 5)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

from harness import HOST, free_port, postgres_pids, start_platform, stop, wait_healthy

REFERENCE_APP = textwrap.dedent("""
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
""")


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def measure_reference(workdir: Path) -> tuple[float, float]:
    (workdir / "ref_app.py").write_text(REFERENCE_APP)
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ref_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=workdir,
    )
    try:
        ready = wait_healthy(f"http://{HOST}:{port}/", proc)
        time.sleep(1.0)
        return ready - started, rss_mib([proc.pid])
    finally:
        stop(proc)


def measure_cathouse(data_dir: Path) -> tuple[float, float, float]:
    port = free_port()
    started = time.perf_counter()
    proc = start_platform(data_dir, port)
    try:
        ready = wait_healthy(f"http://{HOST}:{port}/api/v1/health", proc)
        time.sleep(2.0)  # idle: the relay polls, nothing else happens
        return ready - started, rss_mib([proc.pid]), rss_mib(postgres_pids(data_dir))
    finally:
        stop(proc, data_dir)


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
