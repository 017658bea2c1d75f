"""The web pages' server time, against the floor every request pays (``GET /api/v1/health``).

``cathouse up --demo`` runs as a real process (embedded PostgreSQL in a temporary data dir,
the demo cats synced) with its access log on. Each page is requested ``--requests`` times,
one at a time over one keep-alive connection, each request carrying its own X-Request-ID;
the server's own duration for each is read back from the access log (the time from the
request's arrival to its last byte, the inner API calls of the page included), so the load
generator's cost is not counted. Health is measured in the same run, the same way, and each
page's p95 is printed as a multiple of health's.

    .venv/bin/python bench/web.py --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

from harness import HOST, free_port, stop, wait_healthy

PAGES = {
    "health (reference)": "/api/v1/health",
    "browse": "/",
    "search, with a typo": "/?q=leaderbord",
    "category facet": "/?category=leaderboards&sort=rating",
    "a cat's page": "/cats/leaderboard-live",
}
# A signed-in person's pages: a demo cat installed through the install page first.
INSTALLED = "leaderboard-live"
SIGNED_IN_PAGES = {
    "install form": f"/cats/{INSTALLED}/install",
    "your installations": "/installations",
}


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_DATA_DIR": str(data_dir), "CATHOUSE_LOG_LEVEL": "INFO", "CATHOUSE_LOG_JSON": "true"})
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cathouse", "up", "--demo", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "no CSRF token in the form"
    return found.group(1)


def signed_in_pages(client: httpx.Client) -> dict[str, str]:
    """``client`` signed up through the pages, with a demo cat installed: its pages by name."""
    signed_up = client.post(
        "/sign-up",
        data={
            "csrf_token": _csrf(client.get("/sign-up")),
            "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
            "password": "a benchmark passphrase of some length",
            "display_name": "Bench",
        },
    )
    assert signed_up.status_code == 303, signed_up.text
    installed = client.post(
        f"/cats/{INSTALLED}/install",
        data={
            "csrf_token": _csrf(client.get(f"/cats/{INSTALLED}/install")),
            "name": "Bench",
            "secrets.account_id": "bench-account",
            "secrets.account_secret": "bench-secret",
        },
    )
    assert installed.status_code == 303, installed.text
    return {**SIGNED_IN_PAGES, "an installation": installed.headers["location"]}


def server_durations(log: Path) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Each request id's duration in milliseconds, as the server's access log has it; and the
    durations of the API calls the pages made inside the process, by route."""
    found, inner = {}, defaultdict(list)
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "cathouse.access" and "duration_ms" in record:
            found[record["request_id"]] = float(record["duration_ms"])
            route = record["route"]
            if route.startswith("/api/v1/") and route != "/api/v1/health" and record.get("method") == "GET":
                inner[route].append(float(record["duration_ms"]))
    return found, inner


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per page (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cathouse-bench-web-") as tmp:
        port, log = free_port(), Path(tmp) / "cathouse.log"
        proc = start(Path(tmp) / "data", port, log)
        ids: dict[str, list[str]] = {}
        pages = dict(PAGES)
        try:
            wait_healthy(f"http://{HOST}:{port}/api/v1/health", proc)
            with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=10) as client:
                pages.update(signed_in_pages(client))
                for path in pages.values():  # warm up: templates compiled, caches filled
                    for _ in range(20):
                        client.get(path).raise_for_status()
                for i in range(args.requests):
                    for n, (name, path) in enumerate(pages.items()):  # interleaved: a slow moment hits all alike
                        request_id = f"bench-{n}-{i}"
                        client.get(path, headers={"X-Request-ID": request_id}).raise_for_status()
                        ids.setdefault(name, []).append(request_id)
            time.sleep(0.5)  # the last lines reach the log
        finally:
            stop(proc, Path(tmp) / "data")
        durations, inner = server_durations(log)

    print(f"server time per page, {args.requests} requests each, demo data (7 cats), one at a time")
    reference = p95([durations[r] for r in ids["health (reference)"]])
    for name in ids:
        values = [durations[r] for r in ids[name] if r in durations]
        print(
            f"  {name:22} p50 {statistics.median(values):6.2f} ms  p95 {p95(values):6.2f} ms"
            f"  = {p95(values) / reference:5.1f}x health's p95"
        )
    print("the API calls the pages made inside the process (a page's time includes them):")
    for route, values in sorted(inner.items()):
        if len(values) < args.requests:  # signing up and installing, before the pages were measured
            continue
        print(f"  {route:50} p50 {statistics.median(values):6.2f} ms  p95 {p95(values):6.2f} ms  ({len(values)} calls)")


if __name__ == "__main__":
    main()
