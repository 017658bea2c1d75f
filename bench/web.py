"""The web pages' server time, against the floor every request pays (``GET /api/v1/health``),
with the demo data and with 100,000 cats.

For each size a fresh database is migrated (on ``CATHOUSE_DATABASE_URL``'s server when set, an
embedded PostgreSQL otherwise); for the large one it is seeded with ``--cats`` cats first, as
``bench/catalog_search.py`` seeds them (a skewed vocabulary, indexes built after, vacuumed and
analyzed). ``cathouse up --demo`` then runs on it as a real process with its access log on,
and the demo cats synced beside the seeded ones. Three people review a demo cat through the
API and one signs up and installs a demo cat through the pages, so the reviews, the activity
feed and the signed-in pages have something to show.

Each page is requested ``--requests`` times, one at a time over one keep-alive connection (a
signed-in page over a client holding that person's session cookie; the console and the admin
pages an admin's, made with ``cathouse users create-admin``), the pages interleaved so a slow
moment hits all alike, each request carrying its own X-Request-ID; the server's own
duration for each is read back from the access log (from the request's arrival to its last
byte, the inner API calls of the page included), so the load generator's cost is not counted.
Health is measured in the same run, the same way, and each page's p95 is printed as a multiple
of health's. The issue's targets (p95 under 50 ms with the demo data, under 100 ms with
100,000 cats) are checked and a page that misses one is named.

    .venv/bin/python bench/web.py [--requests 200] [--cats 100000] [--reuse cathouse_bench_…]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import make_url

from catalog_search import _exit_on_sigterm, fresh_database, seed, settle
from cathouse.platform.embedded import embedded_database
from harness import HOST, free_port, stop, wait_healthy

CAT = "leaderboard-live"
HEALTH = "health (reference)"
# name: (path, who asks: a visitor, a signed-in person, or an admin, who also has the console)
PAGES = {
    HEALTH: ("/api/v1/health", "visitor"),
    "browse": ("/", "visitor"),
    "search, with a typo": ("/?q=leaderbord", "visitor"),
    "category facet": ("/?category=leaderboards&sort=rating", "visitor"),
    "a cat's page": (f"/cats/{CAT}", "visitor"),
    "its reviews": (f"/cats/{CAT}/reviews", "visitor"),
    "sign-in page": ("/sign-in", "visitor"),
    "activity": ("/activity", "visitor"),
    "profile (signed in)": ("/profile", "person"),
    "your activity (signed in)": ("/activity/mine", "person"),
    "install form (signed in)": (f"/cats/{CAT}/install", "person"),
    "your installations (signed in)": ("/installations", "person"),
    "developer console (admin)": ("/console", "admin"),
    "a cat in the console (admin)": (f"/console/cats/{CAT}", "admin"),
    "review queue (admin)": ("/admin", "admin"),
    "a cat's moderation (admin)": (f"/admin/cats/{CAT}", "admin"),
    "users (admin)": ("/admin/users?q=bench", "admin"),
}
# Added once the person has installed the demo cat through the install page: its URL.
INSTALLATION = "an installation (signed in)"
PASSWORD = "a benchmark passphrase of some length"  # noqa: S105 (the bench's own throwaway accounts)


@dataclass
class Run:
    """One size's figures: each page's server durations, and the API calls the pages made."""

    label: str
    target_ms: float
    pages: dict[str, list[float]]
    inner: dict[str, list[float]]


def start(database_url: str, data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update(
        {
            "CATHOUSE_DATABASE_URL": database_url,
            "CATHOUSE_DATA_DIR": str(data_dir),
            "CATHOUSE_LOG_LEVEL": "INFO",
            "CATHOUSE_LOG_JSON": "true",
        }
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cathouse", "up", "--demo", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def server_durations(log: Path, since: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Each request id's duration in milliseconds, as the server's access log has it from byte
    ``since`` on; and the durations of the API calls the pages made inside the process, by route."""
    found, inner = {}, defaultdict(list)
    with log.open("rb") as written:
        written.seek(since)
        lines = written.read().decode().splitlines()
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "cathouse.access" and "duration_ms" in record:
            found[record["request_id"]] = float(record["duration_ms"])
            route = record["route"]
            if route.startswith("/api/v1/") and not route.startswith("/api/v1/health"):
                inner[route].append(float(record["duration_ms"]))
    return found, inner


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"the form of {page.url} carries no CSRF token"
    return found.group(1)


WHO = ("visitor", "person", "admin")


def create_admin(database_url: str) -> str:
    """An admin made with the CLI, as an operator makes the first one: their email."""
    email = f"bench-admin-{uuid.uuid4().hex[:6]}@example.com"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env["CATHOUSE_DATABASE_URL"] = database_url
    subprocess.run(
        [sys.executable, "-m", "cathouse", "users", "create-admin", "--email", email, "--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        env=env,
        check=True,
        capture_output=True,
    )
    return email


def signed_in(browser: httpx.Client, email: str) -> None:
    answer = browser.post(
        "/sign-in", data={"csrf_token": _csrf(browser.get("/sign-in")), "email": email, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text


def something_to_show(base: str, person: httpx.Client) -> str:
    """Three reviews of the demo cat (through the API), and a person signed up and in through the
    pages on ``person`` (which keeps their session cookie) who installed the demo cat through the
    install page: the path of that installation's page."""
    with httpx.Client(base_url=base, timeout=10) as api:
        for n in range(3):
            email = f"bench-reviewer-{n}-{uuid.uuid4().hex[:6]}@example.com"
            api.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": f"Reviewer {n}"}
            ).raise_for_status()
            token = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
            api.post(
                f"/api/v1/cats/{CAT}/reviews",
                json={"rating": 3 + n % 3, "title": f"Review {n}", "body": "Ranks update as players score."},
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
    signed_up = person.post(
        "/sign-up",
        data={
            "csrf_token": _csrf(person.get("/sign-up")),
            "email": f"bench-visitor-{uuid.uuid4().hex[:6]}@example.com",
            "password": PASSWORD,
            "display_name": "Bench Visitor",
        },
    )
    assert signed_up.status_code == 303, signed_up.text
    installed = person.post(
        f"/cats/{CAT}/install",
        data={
            "csrf_token": _csrf(person.get(f"/cats/{CAT}/install")),
            "name": "Bench",
            "secrets.account_id": "bench-account",
            "secrets.account_secret": "bench-secret",
        },
    )
    assert installed.status_code == 303, installed.text
    return str(installed.headers["location"])


def measure(database_url: str, requests: int, label: str, target_ms: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="cathouse-bench-web-") as tmp:
        port, log = free_port(), Path(tmp) / "cathouse.log"
        proc = start(database_url, Path(tmp) / "data", port, log)
        ids: dict[str, list[str]] = {name: [] for name in [*PAGES, INSTALLATION]}
        try:
            base = f"http://{HOST}:{port}"
            wait_healthy(f"{base}/api/v1/health", proc, timeout=300)
            time.sleep(2)  # the demo cats' events reach the activity feed
            with contextlib.ExitStack() as stack:
                browsers = {who: stack.enter_context(httpx.Client(base_url=base, timeout=10)) for who in WHO}
                asked = {**PAGES, INSTALLATION: (something_to_show(base, browsers["person"]), "person")}
                signed_in(browsers["admin"], create_admin(database_url))
                for path, who in asked.values():  # warm up: templates compiled, caches filled
                    for _ in range(20):
                        browsers[who].get(path).raise_for_status()
                time.sleep(0.5)  # the warm-up's lines reach the log, and are left out
                measured_from = log.stat().st_size
                for i in range(requests):
                    for n, (name, (path, who)) in enumerate(asked.items()):
                        request_id = f"bench-{n}-{i}"
                        browsers[who].get(path, headers={"X-Request-ID": request_id}).raise_for_status()
                        ids[name].append(request_id)
            time.sleep(0.5)  # the last lines reach the log
        finally:
            stop(proc)
        durations, inner = server_durations(log, measured_from)
    pages = {name: [durations[r] for r in found if r in durations] for name, found in ids.items()}
    return Run(label, target_ms, pages, dict(inner))


def report(run: Run, requests: int) -> None:
    load = os.getloadavg()
    reference = p95(run.pages[HEALTH])
    print(f"\n{run.label}: server time per page, {requests} requests each, one at a time")
    print(f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min) at the end; {os.cpu_count()} cores")
    print(f"| Page | p50 | p95 | p95 against health's | under {run.target_ms:.0f} ms |")
    print("| --- | --- | --- | --- | --- |")
    missed = []
    for name, values in run.pages.items():
        p50, top = statistics.median(values), p95(values)
        within = "—" if name == HEALTH else ("yes" if top < run.target_ms else "**no**")
        if within == "**no**":
            missed.append(name)
        print(f"| {name} | {p50:.1f} ms | {top:.1f} ms | {top / reference:.0f}x | {within} |")
    print("the API calls the pages made inside the process (a page's time includes them):")
    for route, values in sorted(run.inner.items(), key=lambda rv: -max(rv[1])):
        if len(values) > 1:
            figures = f"p50 {statistics.median(values):6.1f} ms  p95 {p95(values):6.1f} ms"
            print(f"  {route:44} {figures}  ({len(values)} calls)")
    if missed:
        print(f"missed the {run.target_ms:.0f} ms target: {', '.join(missed)}")


@contextlib.contextmanager
def server() -> Iterator[str]:
    """``CATHOUSE_DATABASE_URL``'s server, or an embedded one for the run."""
    configured = os.environ.get("CATHOUSE_DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="cathouse-bench-web-pg-") as data, embedded_database(Path(data)) as url:
        yield url


async def one_size(url: str, label: str, cats: int, target_ms: float, args: argparse.Namespace) -> Run:
    """A fresh database on ``url``'s server (with ``cats`` seeded, or the one ``--reuse`` names),
    the pages measured on it, and the database dropped."""
    reuse = args.reuse if cats else None
    async with fresh_database(url, keep=False, reuse=reuse) as database:
        if reuse:
            await settle(database)
        elif cats:
            print(f"seeding {cats:,} cats into {make_url(database).database}", file=sys.stderr)
            await seed(database, cats)
        return await asyncio.to_thread(measure, database, args.requests, label, target_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per page (default 200)")
    parser.add_argument("--cats", type=int, default=100_000, help="cats of the large run (0: the demo data only)")
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="for the large run, a database bench/catalog_search.py --keep left"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes = [("demo data (8 cats)", 0, 50.0)]
    if args.cats:
        sizes.append((f"{args.cats:,} cats and the demo's", args.cats, 100.0))
    with server() as url:
        for label, cats, target in sizes:
            report(asyncio.run(one_size(url, label, cats, target, args)), args.requests)


if __name__ == "__main__":
    main()
