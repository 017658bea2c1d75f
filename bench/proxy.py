"""The proxy's throughput and latency against nginx as a reverse proxy, every check on.

One run on this machine starts a small upstream (nginx returning a fixed 91-byte JSON body at
any path, or a minimal raw ASGI app under uvicorn when nginx is not installed), and measures
the same call to it along three paths, one after the other:

- direct: the caller talks to the upstream itself;
- nginx: through nginx as a reverse proxy (``keepalive 64`` to the upstream, HTTP/1.1): the
  reference, what a user would otherwise put there. It runs as an nginx of its own, one worker,
  so that its CPU is told apart from the upstream's. Skipped, and said so, when nginx is not
  installed;
- Cat House: through ``/api/v1/proxy/{installation}/...`` of a real ``cathouse up`` process
  with every check on: the caller's credential (an installation API key in one phase, the
  user's access token in the other), the installation's state and grants, the endpoint map
  and its permission, the rate limits (in Redis when ``CATHOUSE_REDIS_URL`` is set, in memory
  otherwise: the output says which), the credential injection, and an audit record per call.

The upstream answers 200 only when the call carries its credential (``X-Api-Key``) and no
``Authorization`` header, so every counted 2xx of a Cat House phase proves the injection, and
that the caller's own credential stayed behind. Direct and nginx calls send the credential
themselves, as a caller without Cat House would. One request of every path is checked for
status and body before anything is measured.

The load generator is wrk (``wrk -t1 -c32 -d8s --latency`` after a 1 s warm-up, with a Lua
script that hands out prebuilt requests, the same for every path). Without wrk, a minimal
keep-alive HTTP/1.1 client on asyncio stands in (much slower: it, not the proxies, is then
what limits throughput). A Cat House phase spreads its calls over several installations of
one user, so that none reaches the 100,000 calls a minute a cat's plan may allow at most.

Each path's requests per second, p50 and p99 latency and non-2xx answers are printed (a phase
with any non-2xx answer or socket error is marked INVALID), and the CPU each party used over
the phase (load generator, upstream, the proxying process, Redis, PostgreSQL, the kernel's
interrupt work, and what no party accounts for), in cores and per request: all of them share
this machine's cores, so the proxying process's CPU per request is the fairer comparison of
the proxies, and throughput the one a user sees. How busy the machine was with nothing under
load is printed too: other work there disturbs every figure (ratios taken in one run less).
p50 and p99 are those of a closed loop of 32 connections at full load, so they include
queueing (about 32 / throughput); "p50 added" is a path's p50 minus the direct path's.

The platform runs on an embedded PostgreSQL in a temporary data dir; with
``CATHOUSE_DATABASE_URL`` set, a database of its own is created on that server and dropped at
the end. Everything started is stopped on exit, Ctrl-C and SIGTERM included.

    CATHOUSE_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/proxy.py --seconds 8

(``make bench`` runs it too, with the rate limits in memory unless CATHOUSE_REDIS_URL is set.)

``--workers N`` (N > 1) adds a phase through a second proxy service of N worker processes
(``cathouse serve proxy --workers N``, beside the platform, on the same database and Redis),
with API keys: what spreading the proxy over cores gives on this machine. nginx keeps its one
worker, so that phase is not the like-for-like comparison; the one-process phases are.

``--bare`` adds a phase through a bare proxy: the platform's own HTTP server setup (uvicorn
with its protocol) and its upstream client, forwarding each call with the credential added and
no check at all: what serving and forwarding alone cost here, the floor under Cat House's phases.

``--single`` measures each path again with one connection, one call at a time: latency with no
queueing behind other callers, so "p50 added" is what a path adds to a lone call.

``--py-spy FILE`` samples the platform process with py-spy (raw format) during the measured
API-key phase; that phase's figures are then disturbed by the sampling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from cathouse.platform.db import async_url
from harness import HOST, free_port, postgres_pids, start_platform, stop, wait_healthy

# The upstream's answer: 91 bytes of JSON, at any path.
BODY = b'{"user_id":"42","balance":1250,"currency":"points","updated_at":"2025-01-01T00:00:00.000Z"}'
SECRET = "sk-bench-4d9c2e7a1f"  # noqa: S105 - the cat's credential, known to the bench's upstream only
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway admin in a throwaway database
ADMIN_EMAIL = "bench-admin@example.com"
CALL = "/balances/42"  # the endpoint every path calls, below the upstream's /v1
PLAN = 100_000  # calls a minute: the most a cat's version may declare
# Calls a second no path is expected to exceed here; sizes how many installations a phase uses.
RATE_CEILING = 30_000
WARMUP = 1  # seconds of load on a path before its measured phase


class Unexpected(Exception):
    """Something answered other than the benchmark needs."""


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop what was started


# --- processes ---------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unexpected(f"{proc.args!r} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise Unexpected(f"nothing listens on {port} after {timeout}s")


def tree(pid: int) -> Callable[[], list[psutil.Process]]:
    """A process and its children (nginx's master and worker), found afresh on each call."""

    def find() -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        return []

    return find


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    return next((p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)), None)


def named(*names: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in names:
            found.append(proc)
    return found


def cpu_of(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


NGINX_COMMON = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body_temp;
  proxy_temp_path {dir}/proxy_temp;
  fastcgi_temp_path {dir}/fastcgi_temp;
  uwsgi_temp_path {dir}/uwsgi_temp;
  scgi_temp_path {dir}/scgi_temp;
  # No reconnection every 1,000 calls (the default), for either client: steady state only.
  keepalive_requests 1000000;
{servers}
}}
"""

NGINX_UPSTREAM = """\
  server {{
    listen {host}:{port};
    default_type application/json;
    location / {{
      if ($http_x_api_key != "{secret}") {{ return 401; }}
      if ($http_authorization != "") {{ return 400; }}
      return 200 '{body}';
    }}
  }}"""

NGINX_PROXY = """\
  upstream cat {{
    server {host}:{upstream};
    keepalive 64;
    keepalive_requests 1000000;
  }}
  server {{
    listen {host}:{port};
    location / {{
      proxy_pass http://cat;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}"""


def start_nginx(nginx: str, home: Path, servers: str) -> subprocess.Popen[bytes]:
    """One nginx (master and one worker) with everything it writes inside ``home``."""
    home.mkdir(parents=True)
    conf = home / "nginx.conf"
    conf.write_text(NGINX_COMMON.format(dir=home, servers=servers))
    command = [nginx, "-p", str(home), "-c", str(conf)]
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", nginx_version(nginx))
    if found and tuple(map(int, found.groups())) >= (1, 19, 5):
        # Else nginx opens its compiled-in error log before it reads the configuration.
        command += ["-e", str(home / "error.log")]
    with (home / "stderr.log").open("wb") as err:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)


def nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ").replace("/", " ")


async def upstream_app(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
    """The upstream without nginx: the same answers, as a raw ASGI app."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    status, body = 200, BODY
    if headers.get(b"x-api-key") != SECRET.encode():
        status, body = 401, b"{}"
    elif b"authorization" in headers:
        status, body = 400, b"{}"
    response_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(upstream_app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="off")


def serve_bare(port: int, upstream_port: int) -> None:
    """The floor: Cat House's server (uvicorn with its protocol) and upstream client, forwarding
    every call to the upstream with the credential added, and nothing else."""
    import uvicorn

    from cathouse.platform.corked import CorkedHttpToolsProtocol
    from cathouse.proxy.upstream import Target as Upstream
    from cathouse.proxy.upstream import UpstreamPool

    upstream = Upstream(HOST, upstream_port, False, HOST)
    headers = [(b"host", f"{HOST}:{upstream_port}".encode()), (b"x-api-key", SECRET.encode())]
    pools: list[UpstreamPool] = []

    async def bare(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] != "http":
            return
        if not pools:
            pools.append(UpstreamPool(connect_timeout=5, read_timeout=30, max_idle_per_target=64))
        response = await pools[0].request(upstream, scope["method"], scope["path"], headers)
        body = await response.read()
        await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        bare,
        host=HOST,
        port=port,
        http=CorkedHttpToolsProtocol,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )


# --- the platform ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url`` (``cathouse up`` migrates it),
    dropped at the end."""
    name = f"cathouse_bench_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        engine = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def platform_env(database_url: str | None, redis_url: str | None) -> dict[str, str]:
    env = {
        "CATHOUSE_LOG_LEVEL": "WARNING",
        "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
        "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
        # Only the installations' plans limit here: one user makes every call.
        "CATHOUSE_PROXY__USER_RATE_PER_MINUTE": "100000000",
        "CATHOUSE_AUTH__LOGIN_RATE": "1000000/minute",
        "CATHOUSE_AUTH__REGISTER_RATE": "1000000/minute",
    }
    if database_url:
        env["CATHOUSE_DATABASE_URL"] = database_url
    if redis_url:
        env["CATHOUSE_REDIS_URL"] = redis_url
    return env


def start_workers(
    data_dir: Path, port: int, workers: int, extra_env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``cathouse serve proxy --workers N`` on the platform's database (the embedded one is
    joined through its data dir) and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_DATA_DIR": str(data_dir), **extra_env})
    command = [sys.executable, "-m", "cathouse", "serve", "proxy", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)


def create_admin(data_dir: Path, extra_env: dict[str, str]) -> None:
    """``cathouse users create-admin`` with the platform's settings (it joins its database)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATHOUSE_")}
    env.update({"CATHOUSE_DATA_DIR": str(data_dir), **extra_env})
    command = [sys.executable, "-m", "cathouse", "users", "create-admin", "--email", ADMIN_EMAIL, "--password-stdin"]
    done = subprocess.run(command, input=f"{PASSWORD}\n".encode(), env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise Unexpected(f"create-admin exited with {done.returncode}: {done.stderr.decode(errors='replace')[-800:]}")


def expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise Unexpected(f"{what}: {response.status_code}, expected {status}: {response.text[:500]}")
    return response.json() if response.content else None


def login(http: httpx.Client) -> str:
    body = expect(http.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}), 200, "login")
    return str(body["access_token"])


def version_spec(base_url: str) -> dict[str, Any]:
    return {
        "version": "1.0.0",
        "base_url": base_url,
        "credentials": {"type": "header", "header": "X-Api-Key", "field": "api_key"},
        "permissions": [{"name": "points:read", "description": "Read balances", "required": True}],
        "endpoints": [{"method": "GET", "path": "/balances/{user_id}", "permission": "points:read"}],
        "settings_schema": {
            "type": "object",
            "properties": {"api_key": {"type": "string", "writeOnly": True}},
            "required": ["api_key"],
        },
        "webhook_url": None,
        "rate_limit_per_minute": PLAN,
    }


def install(http: httpx.Client, token: str, base_url: str, *, with_key: bool) -> tuple[str, str | None]:
    """A published cat whose API is ``base_url``, installed and active: the installation's id,
    and an API key of it when ``with_key``. The admin publishes, approves and installs."""
    auth = {"Authorization": f"Bearer {token}"}
    slug = f"bench-{uuid.uuid4().hex[:10]}"
    cat = {
        "slug": slug,
        "name": "Bench Points",
        "summary": "A cat whose API answers one balance, for the proxy benchmark.",
        "description": "# Bench\n\nAnswers a fixed balance.",
        "category": "points",
        "tags": ["points"],
        "homepage": "https://points.example.com",
    }
    expect(http.post("/api/v1/cats", json=cat, headers=auth), 201, "create a cat")
    expect(http.post(f"/api/v1/cats/{slug}/versions", json=version_spec(base_url), headers=auth), 201, "add a version")
    expect(http.post(f"/api/v1/cats/{slug}/submit", headers=auth), 200, "submit the cat")
    expect(http.post(f"/api/v1/cats/{slug}/approve", headers=auth), 200, "approve the cat")
    body = {
        "cat": slug,
        "name": f"Bench {slug[-6:]}",
        "permissions": ["points:read"],
        "settings": {},
        "secrets": {"api_key": SECRET},
    }
    installation = str(expect(http.post("/api/v1/installations", json=body, headers=auth), 201, "install")["id"])
    deadline = time.monotonic() + 30
    while True:
        state = expect(http.get(f"/api/v1/installations/{installation}", headers=auth), 200, "read the installation")
        if state["status"] == "active":
            break
        if time.monotonic() > deadline:
            raise Unexpected(f"installation still {state['status']} ({state.get('status_reason')}) after 30 s")
        time.sleep(0.05)
    if not with_key:
        return installation, None
    key = expect(
        http.post(f"/api/v1/installations/{installation}/api-keys", json={"name": "bench"}, headers=auth),
        201,
        "create an API key",
    )["key"]
    return installation, str(key)


# --- load --------------------------------------------------------------------------------------

Request = tuple[str, dict[str, str]]  # path, headers


@dataclass(frozen=True)
class Target:
    """One way to the upstream: where the load generator connects, and the requests it sends in turn."""

    name: str
    label: str
    port: int
    requests: list[Request]
    proxy: str | None  # the CPU part that proxies ("nginx proxy", "cathouse"), None for direct


@dataclass
class Load:
    """What the load generator measured in one phase."""

    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    generator_cpu: float  # CPU seconds of the load generator itself


@dataclass
class Result:
    target: Target
    load: Load
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by part over the phase

    def us_per_request(self, part: str) -> float:
        return self.cpu.get(part, 0.0) / max(1, self.load.requests) * 1e6

    @property
    def valid(self) -> bool:
        return self.load.non_2xx == 0 and self.load.socket_errors == 0 and self.load.requests > 0


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if match is None:
        raise Unexpected(f"wrk printed a time it cannot be read: {value!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str, generator_cpu: float) -> Load:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise Unexpected(f"wrk's output lacks {pattern!r}:\n{output}")
        return match

    count = find(r"^\s*(\d+) requests in ([\d.]+\w+),")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Load(
        rate=float(find(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=_seconds(find(r"^\s+50%\s+(\S+)")[1]) * 1000,
        p99_ms=_seconds(find(r"^\s+99%\s+(\S+)")[1]) * 1000,
        requests=int(count[1]),
        seconds=_seconds(count[2]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        generator_cpu=generator_cpu,
    )


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(requests: list[Request], path: Path) -> Path:
    """A script that hands out the prebuilt requests in turn; the same shape for every path, so
    wrk spends the same per request whichever it measures."""
    formatted = []
    for target, headers in requests:
        table = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        formatted.append(f'    wrk.format("GET", {lua_string(target)}, {{{table}}}),')
    path.write_text(
        "local requests = {}\nlocal n = 0\n\n"
        "init = function(args)\n  requests = {\n" + "\n".join(formatted) + "\n  }\nend\n\n"
        "request = function()\n  n = n % #requests + 1\n  return requests[n]\nend\n"
    )
    return path


class Wrk:
    def __init__(self, binary: str, workdir: Path, connections: int, threads: int) -> None:
        self.binary = binary
        self.workdir = workdir
        self.connections = connections
        self.threads = threads

    @property
    def name(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True, check=False)
        first = (out.stdout + out.stderr).splitlines()[:1]
        return first[0].split(" Copyright")[0].strip() if first else "wrk"

    def run(self, target: Target, seconds: float) -> Load:
        script = wrk_script(target.requests, self.workdir / f"{target.name}.lua")
        command = [
            self.binary,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://{HOST}:{target.port}",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise Unexpected(f"wrk exited with {done.returncode}: {done.stderr[-800:]}")
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return parse_wrk(done.stdout, cpu)


def http_request(port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class AsyncioLoad:
    """The stand-in for wrk: one keep-alive HTTP/1.1 connection per client, each sending its
    requests in turn and reading answers framed by Content-Length. No more client than that."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.name = "a minimal asyncio client (wrk is not installed)"

    def run(self, target: Target, seconds: float) -> Load:
        try:
            import uvloop

            runner: Callable[[Any], Any] = uvloop.run
        except ImportError:  # pragma: no cover - uvicorn[standard] brings it
            runner = asyncio.run
        before = resource.getrusage(resource.RUSAGE_SELF)
        latencies, non_2xx, elapsed = runner(self._load(target, seconds))
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if len(latencies) < 2:
            raise Unexpected(f"{target.label}: fewer than 2 answers in {seconds}s")
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        return Load(
            len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, len(latencies), elapsed, non_2xx, 0, cpu
        )

    async def _load(self, target: Target, seconds: float) -> tuple[list[float], int, float]:
        payloads = [http_request(target.port, path, headers) for path, headers in target.requests]
        latencies: list[float] = []
        non_2xx = 0
        end = time.perf_counter() + seconds

        async def client(offset: int) -> None:
            nonlocal non_2xx
            reader, writer = await asyncio.open_connection(HOST, target.port)
            n = offset
            try:
                while (sent := time.perf_counter()) < end:
                    writer.write(payloads[n % len(payloads)])
                    n += 1
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    await reader.readexactly(length)
                    latencies.append(time.perf_counter() - sent)
                    if not head.startswith(b"HTTP/1.1 2"):
                        non_2xx += 1
            finally:
                writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(self.connections)))
        return latencies, non_2xx, time.perf_counter() - started


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Parts:
    """The processes whose CPU time each phase reads."""

    upstream: Callable[[], list[psutil.Process]]
    nginx_proxy: Callable[[], list[psutil.Process]] | None
    cathouse: Callable[[], list[psutil.Process]]
    postgres: Callable[[], list[psutil.Process]]
    redis: Callable[[], list[psutil.Process]]
    workers: Callable[[], list[psutil.Process]] | None = None  # cathouse serve proxy --workers N
    bare: Callable[[], list[psutil.Process]] | None = None  # --bare

    def read(self) -> dict[str, float]:
        groups = {
            "upstream": self.upstream(),
            "nginx proxy": self.nginx_proxy() if self.nginx_proxy else [],
            "cathouse": self.cathouse(),
            "cathouse workers": self.workers() if self.workers else [],
            "bare proxy": self.bare() if self.bare else [],
            "postgres": self.postgres(),
            "redis": self.redis(),
        }
        return {name: cpu_of(procs) for name, procs in groups.items()}


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the machine spent busy, and how many of them in interrupts (on loopback,
    mostly the kernel passing packets between the parties: no process is charged for it)."""
    times = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is inside user
    busy = sum(getattr(times, f, 0.0) for f in fields)
    return busy, getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


def check(target: Target) -> None:
    """Every request of ``target`` answers 200 with the upstream's body, before any is measured."""
    with httpx.Client(base_url=f"http://{HOST}:{target.port}", timeout=10) as http:
        for path, headers in target.requests:
            response = http.get(path, headers=headers)
            if response.status_code != 200 or response.content != BODY:
                raise Unexpected(f"{target.label}: GET {path}: {response.status_code} {response.text[:300]!r}")


def measure(
    target: Target,
    load: Wrk | AsyncioLoad,
    parts: Parts,
    seconds: float,
    *,
    py_spy: tuple[str, Path, int] | None = None,
) -> Result:
    check(target)
    print(f"  {target.label}: warm-up {WARMUP} s, then {seconds:g} s", file=sys.stderr, flush=True)
    load.run(target, WARMUP)
    spy = None
    if py_spy is not None:
        binary, out, pid = py_spy
        command = [binary, "record", "-o", str(out), "--format", "raw", "-d", str(round(seconds)), "-p", str(pid)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)  # py-spy attaches
    cpu_before, machine_before = parts.read(), machine_cpu()
    measured = load.run(target, seconds)
    cpu_after, machine_after = parts.read(), machine_cpu()
    if spy is not None:
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            print(
                f"warning: py-spy exited with {spy.returncode}: {err.decode(errors='replace')[-400:]}", file=sys.stderr
            )
    cpu = {name: max(0.0, cpu_after[name] - cpu_before[name]) for name in cpu_after}
    cpu["load generator"] = measured.generator_cpu
    cpu["kernel interrupts"] = max(0.0, machine_after[1] - machine_before[1])
    cpu["machine"] = max(0.0, machine_after[0] - machine_before[0])
    cpu["unaccounted"] = max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"))
    return Result(target, measured, cpu)


def installations_needed(seconds: float) -> int:
    """Installations a Cat House phase spreads its calls over: at RATE_CEILING calls a second for
    the warm-up and the phase, each stays under 90% of the plan."""
    return max(1, math.ceil((seconds + WARMUP) * RATE_CEILING / (0.9 * PLAN)))


@dataclass
class Setup:
    upstream_port: int
    upstream_name: str
    nginx_port: int | None
    platform: subprocess.Popen[bytes]
    platform_port: int
    data_dir: Path
    parts: Parts
    database: str
    redis: str | None


def prepare(
    args: argparse.Namespace, stack: contextlib.ExitStack, tmp: Path
) -> tuple[Setup, list[Target], Wrk | AsyncioLoad]:
    """Start the upstream, nginx and the platform (each stopped by ``stack``), and set up the
    installations: the paths to measure, and what measures them."""
    nginx = None if args.no_nginx else find_binary("nginx")
    wrk_binary = None if args.no_wrk else find_binary("wrk")
    load: Wrk | AsyncioLoad
    if wrk_binary is not None:
        load = Wrk(wrk_binary, tmp, args.connections, args.threads)
    else:
        load = AsyncioLoad(args.connections)
    redis_url = os.environ.get("CATHOUSE_REDIS_URL") or None
    database_url = os.environ.get("CATHOUSE_DATABASE_URL") or None

    # The upstream, and nginx in front of it.
    upstream_port = free_port()
    nginx_port: int | None = None
    nginx_proxy: Callable[[], list[psutil.Process]] | None = None
    if nginx is not None:
        body = BODY.decode()
        servers = NGINX_UPSTREAM.format(host=HOST, port=upstream_port, secret=SECRET, body=body)
        upstream_proc = start_nginx(nginx, tmp / "nginx-upstream", servers)
        stack.callback(stop_process, upstream_proc, signal.SIGQUIT)
        wait_for_port(upstream_port, upstream_proc)
        nginx_port = free_port()
        proxy_proc = start_nginx(
            nginx, tmp / "nginx-proxy", NGINX_PROXY.format(host=HOST, port=nginx_port, upstream=upstream_port)
        )
        stack.callback(stop_process, proxy_proc, signal.SIGQUIT)
        wait_for_port(nginx_port, proxy_proc)
        upstream_name = nginx_version(nginx)
        nginx_proxy = tree(proxy_proc.pid)
    else:
        command = [sys.executable, __file__, "--serve-upstream", str(upstream_port)]
        with (tmp / "upstream.log").open("wb") as err:
            upstream_proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        stack.callback(stop_process, upstream_proc)
        wait_for_port(upstream_port, upstream_proc)
        upstream_name = "a raw ASGI app under uvicorn (nginx is not installed)"
    upstream_pid = upstream_proc.pid
    bare_port: int | None = None
    bare: Callable[[], list[psutil.Process]] | None = None
    if args.bare:
        bare_port = free_port()
        command = [sys.executable, __file__, "--serve-bare", str(bare_port), str(upstream_port)]
        with (tmp / "bare.log").open("wb") as err:
            bare_proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        stack.callback(stop_process, bare_proc)
        wait_for_port(bare_port, bare_proc)
        bare = tree(bare_proc.pid)

    # The platform, on a database of its own.
    data_dir = tmp / "data"
    database = "embedded PostgreSQL"
    if database_url:
        url = stack.enter_context(fresh_database(database_url))
        shown = make_url(url).render_as_string(hide_password=True)
        database = f"{shown} (created for this run, dropped after it)"
        database_url = url
    extra = platform_env(database_url, redis_url)
    platform_port = free_port()
    log = tmp / "cathouse.log"
    with log.open("wb") as out:
        platform = start_platform(data_dir, platform_port, extra_env=extra, stderr=out)
    stack.callback(stop, platform, data_dir)
    stack.push(lambda kind, exc, tb: _tail_on_error(log, exc))
    print(f"starting cathouse up on {platform_port} …", file=sys.stderr, flush=True)
    wait_healthy(f"http://{HOST}:{platform_port}/api/v1/health", platform)
    create_admin(data_dir, extra)

    count = installations_needed(args.seconds)
    upstream_url = f"http://{HOST}:{upstream_port}/v1"
    with httpx.Client(base_url=f"http://{HOST}:{platform_port}", timeout=60) as http:
        token = login(http)
        keyed = [install(http, token, upstream_url, with_key=True) for _ in range(count)]
        owned = [install(http, token, upstream_url, with_key=False) for _ in range(count)]
        spread = [install(http, token, upstream_url, with_key=True) for _ in range(count if args.workers > 1 else 0)]
        token = login(http)  # a fresh one: 15 minutes ahead of it

    workers_port: int | None = None
    workers: Callable[[], list[psutil.Process]] | None = None
    if args.workers > 1:
        if not redis_url:
            raise Unexpected("--workers needs CATHOUSE_REDIS_URL: worker processes share the rate limits there")
        workers_port = free_port()
        workers_proc = start_workers(data_dir, workers_port, args.workers, extra, tmp / "workers.log")
        stack.callback(stop, workers_proc)
        print(f"starting cathouse serve proxy --workers {args.workers} on {workers_port} …", file=sys.stderr)
        wait_healthy(f"http://{HOST}:{workers_port}/api/v1/health", workers_proc)
        workers = tree(workers_proc.pid)

    def postgres() -> list[psutil.Process]:
        if database_url:  # a shared server: only the backends serving this run's database
            name = make_url(database_url).database or ""
            return [p for p in named("postgres") if _serves(p, name)]
        return [p for pid in postgres_pids(data_dir) for p in _process(pid)]

    platform_pid = platform.pid
    parts = Parts(
        upstream=tree(upstream_pid),
        nginx_proxy=nginx_proxy,
        cathouse=lambda: [psutil.Process(platform_pid)],
        postgres=postgres,
        redis=lambda: named("redis-server") if redis_url else [],
        workers=workers,
        bare=bare,
    )
    setup = Setup(
        upstream_port, upstream_name, nginx_port, platform, platform_port, data_dir, parts, database, redis_url
    )

    key = {"X-Api-Key": SECRET}
    targets = [Target("direct", "direct", upstream_port, [(f"/v1{CALL}", key)], None)]
    if nginx_port is not None:
        targets.append(Target("nginx", "nginx reverse proxy", nginx_port, [(f"/v1{CALL}", key)], "nginx proxy"))
    if bare_port is not None:
        targets.append(Target("bare", "bare proxy (no checks)", bare_port, [(f"/v1{CALL}", {})], "bare proxy"))
    proxied = "/api/v1/proxy/{}" + CALL
    targets.append(
        Target(
            "cathouse-key",
            "Cat House, API key",
            platform_port,
            [(proxied.format(i), {"Authorization": f"Bearer {k}"}) for i, k in keyed],
            "cathouse",
        )
    )
    targets.append(
        Target(
            "cathouse-token",
            "Cat House, access token",
            platform_port,
            [(proxied.format(i), {"Authorization": f"Bearer {token}"}) for i, _ in owned],
            "cathouse",
        )
    )
    if workers_port is not None:
        targets.append(
            Target(
                "cathouse-workers",
                f"Cat House, key, {args.workers} procs",
                workers_port,
                [(proxied.format(i), {"Authorization": f"Bearer {k}"}) for i, k in spread],
                "cathouse workers",
            )
        )

    return setup, targets, load


def idle_cores(seconds: float = 2.0) -> float:
    """Cores the machine keeps busy with everything started and nothing under load: what other
    processes (and the platform's idle work) take from every phase."""
    before = machine_cpu()[0]
    time.sleep(seconds)
    return max(0.0, machine_cpu()[0] - before) / seconds


@dataclass
class Run:
    results: list[Result]
    setup: Setup
    generator: str
    idle: float
    single: list[tuple[Target, Load]] = field(default_factory=list)  # --single: one connection


def run(args: argparse.Namespace, stack: contextlib.ExitStack, tmp: Path) -> Run:
    setup, targets, load = prepare(args, stack, tmp)
    spy = None
    if args.py_spy:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not os.access(binary, os.X_OK):
            raise Unexpected("--py-spy: py-spy is not installed (.venv/bin/pip install py-spy)")
        spy = (binary, Path(args.py_spy).resolve(), setup.platform.pid)

    idle = idle_cores()
    print(f"measuring ({load.name}, {args.connections} connections):", file=sys.stderr, flush=True)
    results = []
    for target in targets:
        sampled = spy if target.name == "cathouse-key" else None
        results.append(measure(target, load, setup.parts, args.seconds, py_spy=sampled))
    single = []
    if args.single:
        # One connection: no queueing behind other callers, so p50 is what each path adds itself.
        one: Wrk | AsyncioLoad = Wrk(load.binary, tmp, 1, 1) if isinstance(load, Wrk) else AsyncioLoad(1)
        print("measuring one connection at a time:", file=sys.stderr, flush=True)
        for target in targets:
            if target.name in ("direct", "nginx", "bare", "cathouse-key", "cathouse-token"):
                print(f"  {target.label}: {args.seconds:g} s", file=sys.stderr, flush=True)
                single.append((target, one.run(target, args.seconds)))
    return Run(results, setup, load.name, idle, single)


def _serves(proc: psutil.Process, database: str) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(database in part for part in proc.cmdline())
    return False


def _process(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [psutil.Process(pid)]
    return []


def _tail_on_error(log: Path, exc: BaseException | None) -> None:
    """The platform's last log lines, when the run failed (not when it was stopped)."""
    stopped = isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and not isinstance(exc.code, str))
    if exc is not None and not stopped:
        with contextlib.suppress(OSError):
            tail = log.read_text(errors="replace").splitlines()[-20:]
            if tail:
                print("cathouse's last log lines:", *tail, sep="\n", file=sys.stderr)


# --- the report --------------------------------------------------------------------------------


def report(outcome: Run, args: argparse.Namespace, load_avg: tuple[float, float]) -> None:
    results, setup = outcome.results, outcome.setup
    cores = os.cpu_count() or 1
    print(
        f"{cores} cores, shared by everything below; {outcome.generator}, {args.threads} thread(s), "
        f"{args.connections} connections, {args.seconds:g} s per phase after a {WARMUP} s warm-up"
    )
    print(f"upstream: {setup.upstream_name}, a {len(BODY)}-byte JSON body; it checks the injected X-Api-Key")
    if setup.nginx_port is None:
        print("nginx reverse proxy: skipped (nginx is not installed): no reference to compare with")
    if setup.redis:
        print(f"rate limits: in Redis ({make_url(setup.redis).render_as_string(hide_password=True)}): every check on")
    else:
        print(
            "rate limits: in the platform's memory (CATHOUSE_REDIS_URL unset): not every check is on; "
            "set CATHOUSE_REDIS_URL=redis://127.0.0.1:6379/0 for the Redis round trip"
        )
    print(f"database: {setup.database}; audit records written in batches")
    per_phase = max(len(r.target.requests) for r in results)
    print(
        f"Cat House phases spread their calls over {per_phase} installation{'s' if per_phase != 1 else ''} each "
        f"(plan: {PLAN:,} calls a minute)"
    )
    print(
        f"load average (1 min): {load_avg[0]:.2f} before, {load_avg[1]:.2f} after; "
        f"machine busy with nothing under load: {outcome.idle:.2f} cores"
    )
    if outcome.idle > 0.25:
        print("warning: other work kept the machine busy before the phases; figures are disturbed, ratios less so")
    print()
    print(f"CPU busy during each phase, in cores (of {cores}); 'unaccounted' is no party's (other processes, kernel):")
    names = [
        "load generator",
        "upstream",
        "nginx proxy",
        "cathouse",
        "cathouse workers",
        "bare proxy",
        "redis",
        "postgres",
        "kernel interrupts",
    ]
    for r in results:
        seconds = r.load.seconds
        shown = ", ".join(f"{n} {r.cpu.get(n, 0.0) / seconds:.2f}" for n in names if r.cpu.get(n, 0.0) >= 0.005)
        print(
            f"  {r.target.label + ':':26} {shown}; unaccounted {r.cpu['unaccounted'] / seconds:.2f}; "
            f"machine {r.cpu['machine'] / seconds:.2f}"
        )
    print()
    head = (
        f"{'path':26} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'proxy CPU µs/req':>17} {'machine CPU µs/req':>19}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        proxy = f"{r.us_per_request(r.target.proxy):.0f}" if r.target.proxy else "—"
        bad = r.load.non_2xx + r.load.socket_errors
        mark = "" if r.valid else "  INVALID"
        print(
            f"{r.target.label:26} {r.load.rate:>11,.0f} {r.load.p50_ms:>8.2f} {r.load.p99_ms:>8.2f} {bad:>8} "
            f"{proxy:>17} {r.us_per_request('machine'):>19.0f}{mark}"
        )
    for r in results:
        if not r.valid:
            print(
                f"warning: {r.target.label}: {r.load.non_2xx} non-2xx answers and {r.load.socket_errors} socket "
                "errors: not a valid measurement"
            )
    if outcome.single:
        print()
        print("one connection, one call at a time (no queueing):")
        base = outcome.single[0][1].p50_ms
        for target, measured in outcome.single:
            extra = "" if target.name == "direct" else f"; p50 added over direct {measured.p50_ms - base:.2f} ms"
            print(
                f"  {target.label + ':':26} {measured.rate:>9,.0f} requests/s, p50 {measured.p50_ms:.2f} ms, "
                f"p99 {measured.p99_ms:.2f} ms{extra}"
            )
    print()
    by = {r.target.name: r for r in results}
    direct, nginx = by["direct"], by.get("nginx")
    phases = [("cathouse-key", "Cat House (API key)"), ("cathouse-token", "Cat House (access token)")]
    if "bare" in by:
        phases.insert(0, ("bare", "bare proxy, no checks"))
    if "cathouse-workers" in by:
        phases.append(("cathouse-workers", f"Cat House (API key, {args.workers} worker processes)"))
    for name, label in phases:
        ours = by[name]
        added = ours.load.p50_ms - direct.load.p50_ms
        cpu = ours.us_per_request(ours.target.proxy or "cathouse")
        if nginx is None:
            print(
                f"{label}: {ours.load.rate:,.0f} requests/s; p50 added over direct: {added:.2f} ms; "
                f"{cpu:.0f} µs CPU per request (no nginx to compare with)"
            )
            continue
        nginx_added = nginx.load.p50_ms - direct.load.p50_ms
        nginx_cpu = nginx.us_per_request("nginx proxy")
        print(
            f"{label} ÷ nginx: {ours.load.rate / nginx.load.rate:.2f} of the throughput; "
            f"p50 added over direct: {added:.2f} ms (nginx: {nginx_added:.2f} ms); "
            f"proxy CPU per request: {cpu:.0f} µs (nginx: {nginx_cpu:.0f} µs, {cpu / nginx_cpu:.1f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured phase (whole seconds)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--no-nginx", action="store_true", help="act as if nginx were not installed")
    parser.add_argument("--no-wrk", action="store_true", help="act as if wrk were not installed")
    parser.add_argument(
        "--workers", type=int, default=1, help="also measure a proxy service of this many worker processes"
    )
    parser.add_argument("--py-spy", metavar="FILE", help="sample the platform with py-spy during the API-key phase")
    parser.add_argument(
        "--single", action="store_true", help="also measure each path with one connection: the latency it adds alone"
    )
    parser.add_argument("--bare", action="store_true", help="also measure a bare proxy: server and client, no checks")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", type=int, nargs=2, metavar=("PORT", "UPSTREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    if args.serve_bare:
        serve_bare(*args.serve_bare)
        return
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="cathouse-bench-proxy-") as tmp, contextlib.ExitStack() as stack:
            outcome = run(args, stack, Path(tmp))
            load_after = os.getloadavg()[0]
    except Unexpected as exc:
        raise SystemExit(f"error: {exc}") from None
    report(outcome, args, (load_before, load_after))


if __name__ == "__main__":
    main()
