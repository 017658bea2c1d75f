"""A newcomer's first ``make up``: from a fresh clone to a healthy platform.

The repository's committed tree is cloned into a temporary directory and ``make up`` runs
there as a newcomer would run it: a new virtual environment, the install (uv, or pip where uv
cannot be had), an embedded PostgreSQL initialised from nothing, the migrations, the demo
cats, then the platform. The clock stops when ``/api/v1/health`` first answers 200. uv gets an
empty cache of its own (``UV_CACHE_DIR``), so every package is downloaded as on a new machine.

The reference, timed in the same run, is ``python -m venv`` alone: the floor of any install.
The figure to compare between machines is the ratio.

    .venv/bin/python bench/first_up.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import HOST, free_port, stop, wait_healthy

REPO = Path(__file__).resolve().parent.parent


def time_venv(workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(workdir / "reference-venv")], check=True)
    return time.perf_counter() - started


def first_up(workdir: Path) -> tuple[float, float]:
    """Seconds to healthy, and of those the install's (until the venv's stamp appears)."""
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_PORT": str(port), "UV_CACHE_DIR": str(workdir / "uv-cache")})
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "up"], cwd=clone, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    stamp = clone / ".venv" / ".installed"
    installed = None
    try:
        while installed is None:
            if stamp.exists():
                installed = time.perf_counter() - started
            elif proc.poll() is not None:
                raise SystemExit(f"make up exited with {proc.returncode} before the install finished")
            time.sleep(0.05)
        healthy = wait_healthy(f"http://{HOST}:{port}/api/v1/health", proc, timeout=300) - started
    finally:
        # make's child is the platform: SIGTERM to the whole group stops it, then its database.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        stop(proc, clone / ".cathouse")
    return healthy, installed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cathouse-first-up-") as tmp:
        workdir = Path(tmp)
        reference = time_venv(workdir)
        healthy, installed = first_up(workdir)
    print(f"{'step':<52} {'seconds':>8} {'÷ venv':>8}")
    print(f"{'python -m venv (reference)':<52} {reference:>8.1f} {1:>8.2f}")
    print(f"{'make up: the install (venv, uv or pip, packages)':<52} {installed:>8.1f} {installed / reference:>8.1f}")
    print(f"{'make up: fresh clone to a healthy platform':<52} {healthy:>8.1f} {healthy / reference:>8.1f}")


if __name__ == "__main__":
    main()
