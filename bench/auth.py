"""Login throughput against the argon2id hash rate, and token validation against health.

Login is meant to cost one argon2id verification and little else, so its reference is that
verification alone: pwdlib's Argon2Hasher with the parameters the auth service uses (its
AuthSettings defaults), run in a loop in this process on one thread. Logins per second over
HTTP are compared with verifications per second; a ratio near 1 means login adds nothing
worth mentioning. Login is measured twice: every client on one account (logins of one
account queue on its row lock), and each client on its own account. The verification rate
on two threads is printed too, as the most this machine could give if logins hashed in
parallel. The server's CPU per login is split between its event loop (the main thread) and
its other threads, where the hashes run, to show what login costs beyond the hash.

``GET /api/v1/auth/validate`` (forward-auth for gateways) is compared with
``GET /api/v1/health`` on the same server, at the same concurrency, for the same time:
health is the floor any request through the platform pays. Besides requests per second and
p99 latency, the server's CPU time per request is compared: it holds even when the load
generator, not the server, is what runs out of CPU.

The platform runs as a real ``cathouse up`` process with a fresh data dir (embedded
PostgreSQL) and per-address rate limits raised out of the way. The load generator is a
minimal keep-alive HTTP/1.1 client on asyncio streams, one connection per client (httpx
spends more CPU per request than the health endpoint does). It shares the machine's cores
with the server, so absolute figures understate the server; the CPU each party used in each
phase is printed, with whatever else ran on the machine meanwhile ("others", which should
be near 0 for the figures to mean anything). The ratios are what to compare between machines.

    .venv/bin/python bench/auth.py --seconds 5 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
import psutil
from pwdlib.hashers.argon2 import Argon2Hasher

from cathouse.platform.settings import AuthSettings
from harness import HOST, free_port, postgres_pids, start_platform, stop, wait_healthy

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway account in a temp data dir
WARMUP = 0.5  # seconds of load before each phase's clock starts


class Unexpected(Exception):
    """The server answered something other than what the benchmark needs."""


def cpu_seconds(procs: list[psutil.Process]) -> Callable[[], float]:
    def read() -> float:
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    return read


def thread_cpu_seconds(proc: psutil.Process, *, main: bool) -> Callable[[], float]:
    """The CPU seconds of a process's main thread (cathouse's event loop), or of its other
    threads (where it hashes passwords)."""

    def read() -> float:
        with contextlib.suppress(psutil.Error):
            return sum(t.user_time + t.system_time for t in proc.threads() if (t.id == proc.pid) == main)
        return 0.0

    return read


class CpuMeter:
    """CPU seconds used so far by each named part, and by everything else on the machine
    ("others")."""

    def __init__(self, parts: dict[str, Callable[[], float]]) -> None:
        self.parts = parts

    def read(self) -> dict[str, float]:
        used = {name: read() for name, read in self.parts.items()}
        machine = psutil.cpu_times()
        fields = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is inside user
        used["others"] = sum(getattr(machine, field, 0.0) for field in fields) - sum(used.values())
        return used

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float], elapsed: float) -> dict[str, float]:
        return {name: max(0.0, after[name] - before[name]) / elapsed for name in after}


def hasher() -> Argon2Hasher:
    settings = AuthSettings()
    return Argon2Hasher(
        memory_cost=settings.argon2_memory_kib,
        time_cost=settings.argon2_iterations,
        parallelism=settings.argon2_lanes,
    )


def verify_rate(seconds: float, threads: int) -> tuple[float, dict[str, float]]:
    """Verifications per second of one correct password on ``threads`` threads (argon2-cffi
    releases the GIL while it hashes), and the cores busy meanwhile."""
    argon2 = hasher()
    stored = argon2.hash(PASSWORD)
    argon2.verify(PASSWORD, stored)  # warm up: allocate, load the library

    def loop(deadline: float) -> int:
        done = 0
        while time.perf_counter() < deadline:
            if not argon2.verify(PASSWORD, stored):
                raise SystemExit("the reference verification failed")
            done += 1
        return done

    cpu = CpuMeter({"this process": cpu_seconds([psutil.Process()])})
    before, start = cpu.read(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(loop, [start + seconds] * threads))
    after, elapsed = cpu.read(), time.perf_counter() - start
    return sum(counts) / elapsed, CpuMeter.cores(before, after, elapsed)


def start_cathouse(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    # The per-address limits (30 logins a minute) would otherwise be what we measure.
    rates = {"CATHOUSE_AUTH__LOGIN_RATE": "1000000/minute", "CATHOUSE_AUTH__REGISTER_RATE": "1000000/minute"}
    with log.open("wb") as out:
        return start_platform(data_dir, port, extra_env=rates, stderr=out), port


def set_up_accounts(base: str, count: int) -> tuple[list[str], str]:
    """``count`` registered accounts, and an access token of the first."""
    emails = [f"bench-{n}@example.com" for n in range(count)]
    with httpx.Client(base_url=base, timeout=60) as http:
        for email in emails:
            body = {"email": email, "password": PASSWORD, "display_name": "Bench"}
            response = http.post("/api/v1/auth/register", json=body)
            if response.status_code != 201:
                raise SystemExit(f"register: {response.status_code}, expected 201: {response.text[:500]}")
        response = http.post("/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD})
        if response.status_code != 200:
            raise SystemExit(f"login: {response.status_code}, expected 200: {response.text[:500]}")
        return emails, str(response.json()["access_token"])


def http_request(method: str, path: str, port: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def login_request(email: str, port: int) -> bytes:
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    return http_request("POST", "/api/v1/auth/login", port, {"Content-Type": "application/json"}, body)


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read one response that has a
    Content-Length (everything cathouse answers here has one). No more client than that."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise Unexpected(f"a response without Content-Length: {head!r}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass(frozen=True)
class Phase:
    """Requests that completed inside the measured window, their latencies, and the cores
    each party kept busy meanwhile."""

    seconds: float
    latencies: list[float]
    cores: dict[str, float]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def p99_ms(self) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98] * 1000

    def cpu_ms(self, *parts: str) -> float:
        """CPU per request of the named parts, in milliseconds."""
        return sum(self.cores[part] for part in parts) / self.rate * 1000

    @property
    def server_us(self) -> float:
        """Server CPU per request (cathouse and its PostgreSQL), in microseconds."""
        return self.cpu_ms("cathouse event loop", "cathouse threads", "postgres") * 1000


async def load(port: int, requests: list[bytes], seconds: float, cpu: CpuMeter) -> Phase:
    """One client per request in ``requests``, each sending it again and again on its own
    connection; counts the responses that arrive within ``seconds`` after a short warm-up."""
    connections: list[Connection] = []
    latencies: list[float] = []
    cores: dict[str, float] = {}

    async def meter() -> None:
        await asyncio.sleep(start - time.perf_counter())
        before, began = cpu.read(), time.perf_counter()
        await asyncio.sleep(end - time.perf_counter())
        after, elapsed = cpu.read(), time.perf_counter() - began
        cores.update(CpuMeter.cores(before, after, elapsed))

    async def client(connection: Connection, request: bytes) -> None:
        while (sent := time.perf_counter()) < end:
            status, body = await connection.send(request)
            done = time.perf_counter()
            if status != 200:
                raise Unexpected(f"{request.split(b' HTTP')[0].decode()}: {status}, expected 200: {body[:500]!r}")
            if start <= done <= end:
                latencies.append(done - sent)

    try:
        connections.extend([await Connection.open(port) for _ in requests])
        start = time.perf_counter() + WARMUP  # read by meter() and client()
        end = start + seconds
        await asyncio.gather(meter(), *(client(c, r) for c, r in zip(connections, requests, strict=True)))
    finally:
        for connection in connections:
            await connection.close()
    return Phase(seconds, latencies, cores)


@dataclass(frozen=True)
class Results:
    login_shared: Phase
    login_own: Phase
    health: Phase
    validate: Phase


async def measure_http(
    port: int, emails: list[str], access: str, seconds: float, server_pid: int, data_dir: Path
) -> Results:
    server = psutil.Process(server_pid)
    cpu = CpuMeter(  # after the set-up, so the connection pools' PostgreSQL backends exist
        {
            "cathouse event loop": thread_cpu_seconds(server, main=True),
            "cathouse threads": thread_cpu_seconds(server, main=False),
            "postgres": cpu_seconds([psutil.Process(pid) for pid in postgres_pids(data_dir)]),
            "load generator": cpu_seconds([psutil.Process()]),
        }
    )
    n = len(emails)
    login_shared = await load(port, [login_request(emails[0], port)] * n, seconds, cpu)
    login_own = await load(port, [login_request(email, port) for email in emails], seconds, cpu)
    health = await load(port, [http_request("GET", "/api/v1/health", port)] * n, seconds, cpu)
    bearer = {"Authorization": f"Bearer {access}"}
    validate = await load(port, [http_request("GET", "/api/v1/auth/validate", port, bearer)] * n, seconds, cpu)
    return Results(login_shared, login_own, health, validate)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured phase")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent HTTP clients")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    settings = AuthSettings()
    hash_1, hash_1_cores = verify_rate(args.seconds, threads=1)
    hash_2, hash_2_cores = verify_rate(args.seconds, threads=2)

    with tempfile.TemporaryDirectory(prefix="cathouse-bench-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "cathouse.log"
        proc, port = start_cathouse(data_dir, log)
        try:
            wait_healthy(f"http://{HOST}:{port}/api/v1/health", proc)
            emails, access = set_up_accounts(f"http://{HOST}:{port}", args.concurrency)
            results = asyncio.run(measure_http(port, emails, access, args.seconds, proc.pid, data_dir))
        except BaseException as exc:
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-20:]
                print("cathouse's last log lines:", *tail, sep="\n", file=sys.stderr)
            if isinstance(exc, Unexpected):
                raise SystemExit(str(exc)) from None
            raise
        finally:
            stop(proc, data_dir)

    shared, own, health, validate = results.login_shared, results.login_own, results.health, results.validate
    c = args.concurrency
    print(f"CPU busy during each phase, in cores (of {os.cpu_count()}):")
    phases = {
        "argon2id, 1 thread": hash_1_cores,
        "argon2id, 2 threads": hash_2_cores,
        "login, 1 account": shared.cores,
        f"login, {c} accounts": own.cores,
        "health": health.cores,
        "validate": validate.cores,
    }
    for name, cores in phases.items():
        print(f"  {name + ':':21}", ", ".join(f"{group} {used:.2f}" for group, used in cores.items()))
    busiest = max(cores["others"] for cores in phases.values())
    if busiest > 0.2:
        print(f"warning: other processes kept up to {busiest:.2f} cores busy during a phase; its figures are disturbed")
    print(f"server CPU per login, against {1000 / hash_1:.1f} ms for one reference verification:")
    for name, phase in {"1 account": shared, f"{c} accounts": own}.items():
        print(
            f"  {name + ':':21} event loop {phase.cpu_ms('cathouse event loop'):.1f} ms, "
            f"other threads (hashing) {phase.cpu_ms('cathouse threads'):.1f} ms, "
            f"postgres {phase.cpu_ms('postgres'):.1f} ms"
        )
    print(
        f"{os.cpu_count()} cores, shared by the server and the load generator; "
        f"{c} concurrent clients, {args.seconds:g} s per phase"
    )
    print(
        f"argon2id: {settings.argon2_memory_kib} KiB, {settings.argon2_iterations} iterations, "
        f"{settings.argon2_lanes} lane(s)"
    )
    print(f"argon2id verify (reference, 1 thread): {hash_1:.1f}/s")
    print(f"argon2id verify, 2 threads:            {hash_2:.1f}/s = {hash_2 / hash_1:.2f}x reference")
    print(
        f"login over HTTP, 1 account, {c} clients: {shared.rate:.1f}/s = {shared.rate / hash_1:.2f}x reference, "
        f"p99 {shared.p99_ms:.0f} ms"
    )
    print(
        f"login over HTTP, {c} accounts, 1 each:   {own.rate:.1f}/s = {own.rate / hash_1:.2f}x reference, "
        f"p99 {own.p99_ms:.0f} ms"
    )
    print(f"health:   {health.rate:.0f} req/s, p99 {health.p99_ms:.1f} ms, server CPU {health.server_us:.0f} µs/req")
    print(
        f"validate: {validate.rate:.0f} req/s, p99 {validate.p99_ms:.1f} ms, server CPU {validate.server_us:.0f} µs/req"
        f" = {validate.rate / health.rate:.2f}x health throughput, p99 {validate.p99_ms / health.p99_ms:.2f}x,"
        f" CPU {validate.server_us / health.server_us:.2f}x"
    )


if __name__ == "__main__":
    main()
