"""The audit log: batched writes that lose nothing, a hash chain that shows tampering, retention
that keeps it verifiable, redaction of secret query values, and the audit endpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings
from cathouse.proxy import audit
from cathouse.proxy.app import SERVICE as PROXY
from cathouse.proxy.audit import (
    AuditRecord,
    AuditWriter,
    ChainBroken,
    audit_path,
    prune,
    prune_expired,
    redact_query,
    verify,
)
from cathouse.proxy.audit import chain as chain_module
from cathouse.proxy.audit import writer as audit_writer
from cathouse.proxy.audit.records import retry_delay
from cathouse.proxy.models import AuditLog
from cathouse.proxy.router import router as audit_router
from cathouse.services import SERVICES, create_app
from tests.auth.conftest import Account, signed_up
from tests.conftest import truncate_all, truncate_schemas
from tests.proxy.conftest import audit_record, write
from tests.support import cathouse_env


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(AuditLog.__table__).order_by(AuditLog.seq))
        return [dict(r) for r in rows.mappings()]


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement), params)


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(AuditLog)) or 0)


async def wait_for_rows(engine: AsyncEngine, expected: int, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (found := await count(engine)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{found} rows, not {expected}, after {within} s"
        await asyncio.sleep(0.02)


def flush_failures() -> float:
    return REGISTRY.get_sample_value("cathouse_proxy_audit_flush_failures_total") or 0.0


# --- the writer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at_once", "later", "whole"),
    [
        (10, 3, 10),  # a full batch goes at once; three more wait for the interval
        (25, 0, 20),  # a busy writer writes whole batches: the last five are no transaction of their own
    ],
)
async def test_whole_batches_are_written_at_once_and_the_rest_at_the_interval(
    audit_db: AsyncEngine, at_once: int, later: int, whole: int
) -> None:
    writer = AuditWriter(audit_db, batch_size=10, flush_interval=1.0)
    await writer.start()
    try:
        for _ in range(at_once):
            writer.record(audit_record())
        await wait_for_rows(audit_db, whole, within=0.5)
        for _ in range(later):
            writer.record(audit_record())
        await asyncio.sleep(0.2)
        assert await count(audit_db) == whole, "a part batch waits for the interval"
        await wait_for_rows(audit_db, at_once + later, within=3.0)
        assert (await verify(audit_db)).ok
    finally:
        assert await writer.stop() == 0


async def test_stop_drains_every_record_enqueued_right_before_it(audit_db: AsyncEngine) -> None:
    writer = AuditWriter(audit_db, batch_size=100, flush_interval=60)
    await writer.start()
    records = [audit_record(request_id=f"req-{i}") for i in range(1000)]
    for rec in records:
        writer.record(rec)

    assert await writer.stop() == 0

    rows = await stored(audit_db)
    assert [r["request_id"] for r in rows] == [r.request_id for r in records]
    assert [r["seq"] for r in rows] == list(range(1, 1001))
    report = await verify(audit_db)
    assert report.ok, report.problem
    assert report.checked == 1000


async def test_what_is_stored_is_what_was_recorded(audit_db: AsyncEngine) -> None:
    at = datetime(2026, 3, 1, 13, 14, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    rec = audit_record(at=at, latency_ms=1.23456, path="/x?token=[redacted]", api_key_id=uuid.uuid4())
    await write(audit_db, [rec])

    (row,) = await stored(audit_db)
    assert row["at"] == at
    assert row["latency_ms"] == 1.235
    for name in ("request_id", "user_id", "owner_id", "installation_id", "cat_id", "api_key_id", "path", "status"):
        assert row[name] == getattr(rec, name)
    assert (await verify(audit_db)).ok


async def test_a_failed_batch_is_kept_and_retried_in_order(
    audit_db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = audit.append
    failures = 2

    async def flaky(session: AsyncSession, records: list[AuditRecord]) -> audit.Appended:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the database went away")
        return await real_append(session, records)

    monkeypatch.setattr(audit_writer, "append", flaky)
    before = flush_failures()
    writer = AuditWriter(audit_db, batch_size=5, flush_interval=0.01, retry_backoff=0.01)
    await writer.start()
    records = [audit_record(request_id=f"req-{i}") for i in range(12)]
    for rec in records:
        writer.record(rec)
    await wait_for_rows(audit_db, 12)
    assert await writer.stop() == 0

    assert flush_failures() - before == 2
    assert [r["request_id"] for r in await stored(audit_db)] == [r.request_id for r in records]
    assert (await verify(audit_db)).ok


async def test_stop_gives_up_after_its_grace_and_says_how_many_were_lost(settings: Settings) -> None:
    nowhere = create_engine(
        settings, application_name="cathouse-tests", pool_size=1, url="postgresql://nobody@127.0.0.1:1/none"
    )
    writer = AuditWriter(nowhere, batch_size=10, flush_interval=0.01, retry_backoff=0.05)
    try:
        await writer.start()
        for _ in range(7):
            writer.record(audit_record())
        assert await writer.stop(grace=0.3) == 7
        assert writer.pending == 0
    finally:
        await nowhere.dispose()


async def test_a_malformed_record_is_dropped_without_blocking_the_rest(audit_db: AsyncEngine) -> None:
    await write(audit_db, [audit_record(request_id="a"), audit_record(status="oops"), audit_record(request_id="b")])
    assert [r["request_id"] for r in await stored(audit_db)] == ["a", "b"]
    assert (await verify(audit_db)).ok


async def test_writers_in_two_processes_build_one_chain(audit_db: AsyncEngine, settings: Settings) -> None:
    engines = [
        create_engine(settings, application_name=f"cathouse-tests-{i}", pool_size=1, max_overflow=0) for i in range(2)
    ]
    writers = [AuditWriter(e, batch_size=7, flush_interval=0.005) for e in engines]

    async def produce(writer: AuditWriter, name: str) -> list[str]:
        ids = []
        for i in range(300):
            rec = audit_record(request_id=f"{name}-{i}")
            writer.record(rec)
            ids.append(rec.request_id)
            if i % 20 == 0:
                await asyncio.sleep(0.002)
        return ids

    try:
        for writer in writers:
            await writer.start()
        produced = await asyncio.gather(produce(writers[0], "a"), produce(writers[1], "b"))
        assert [await w.stop() for w in writers] == [0, 0]
    finally:
        for engine in engines:
            await engine.dispose()

    rows = await stored(audit_db)
    assert [r["seq"] for r in rows] == list(range(1, 601))
    assert sorted(r["request_id"] for r in rows) == sorted(produced[0] + produced[1])
    # Each writer's records keep their order in the one chain.
    for ids in produced:
        prefix = ids[0].split("-")[0]
        assert [r["request_id"] for r in rows if r["request_id"].startswith(prefix + "-")] == ids
    report = await verify(audit_db)
    assert report.ok, report.problem
    assert report.checked == 600


# --- verification ------------------------------------------------------------------------------


@pytest.fixture
async def chain(audit_db: AsyncEngine) -> AsyncEngine:
    """Ten records, seq 1 to 10, verified intact."""
    await write(audit_db, [audit_record(request_id=f"req-{i}", status=200 + i) for i in range(1, 11)])
    report = await verify(audit_db)
    assert report.ok
    assert report.checked == 10
    return audit_db


def _reference_canonical(row: dict[str, Any]) -> bytes:
    """The canonical form as its definition reads: json.dumps, sorted keys, no spaces, ASCII."""
    doc = {
        "seq": row["seq"],
        "at": row["at"].astimezone(UTC).isoformat(timespec="microseconds"),
        **{k: row[k] for k in ("request_id", "method", "path", "decision", "status", "upstream_status")},
        "latency_ms": f"{row['latency_ms']:.3f}",
        "bytes_in": row["bytes_in"],
        "bytes_out": row["bytes_out"],
        **{k: None if row[k] is None else str(row[k]) for k in audit.UUID_FIELDS},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


maybe_uuid = st.none() | st.uuids()


@settings_(max_examples=300, deadline=None)
@given(
    at=st.datetimes(timezones=st.timezones()),
    text_=st.text(max_size=40),
    latency=st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e9),
    numbers=st.tuples(*(st.integers(min_value=-(2**63), max_value=2**63 - 1) for _ in range(4))),
    upstream=st.none() | st.integers(min_value=100, max_value=599),
    ids=st.tuples(*(maybe_uuid for _ in range(5))),
)
def test_the_hashed_form_is_exactly_the_sorted_json_of_the_record(
    at: datetime,
    text_: str,
    latency: float,
    numbers: tuple[int, int, int, int],
    upstream: int | None,
    ids: tuple[uuid.UUID | None, ...],
) -> None:
    seq, status, bytes_in, bytes_out = numbers
    row: dict[str, Any] = {
        "seq": seq,
        "at": at,
        "request_id": text_,
        "method": text_[:16],
        "path": "/x/" + text_,
        "decision": text_[::-1],
        "status": status,
        "upstream_status": upstream,
        "latency_ms": latency,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        **dict(zip(audit.UUID_FIELDS, ids, strict=True)),
    }
    assert audit.canonical(row) == _reference_canonical(row)


odd_text = st.text(max_size=40) | st.sampled_from(
    ["a\tb", "a\\b", "line\nbreak", "\r", "nul\x00", "é", "\ud800", '"q"']
)


@settings_(max_examples=300, deadline=None)
@given(
    at=st.datetimes(timezones=st.timezones() | st.just(UTC)),
    texts=st.tuples(odd_text, odd_text, odd_text, odd_text),
    latency=st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e9) | st.integers(0, 10**6),
    numbers=st.tuples(*(st.integers(min_value=-(2**31), max_value=2**31 - 1) for _ in range(3))),
    upstream=st.none() | st.integers(min_value=100, max_value=599),
    ids=st.tuples(*(maybe_uuid for _ in range(5))),
    seq=st.integers(min_value=1, max_value=2**62),
    prev=st.binary(min_size=32, max_size=32),
)
def test_the_writers_fast_form_hashes_what_verify_recomputes(
    at: datetime,
    texts: tuple[str, str, str, str],
    latency: float,
    numbers: tuple[int, int, int],
    upstream: int | None,
    ids: tuple[uuid.UUID | None, ...],
    seq: int,
    prev: bytes,
) -> None:
    """The writer formats a record once for both its hash and its COPY row; the hash must be the
    one :func:`audit.link_hash` gives for the row as stored, whatever the record holds."""
    request_id, method, path, decision = texts
    status, bytes_in, bytes_out = numbers
    rec = AuditRecord(
        at=at,
        request_id=request_id,
        method=method,
        path=path,
        decision=decision,
        status=status,
        upstream_status=upstream,
        latency_ms=latency,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        **dict(zip(audit.UUID_FIELDS, ids, strict=True)),
    )
    _, digest = chain_module._link(chain_module._prepare(rec), seq, prev)
    assert digest == audit.link_hash(prev, {**chain_module._row(rec), "seq": seq})


async def test_text_that_copy_must_escape_is_stored_and_verifies(audit_db: AsyncEngine) -> None:
    odd = ["tab\there", "back\\slash", "new\nline", "cr\rhere", "nul\x00", "é ü", '"quoted"', "\\N", "\\."]
    records = [audit_record(request_id=value, path="/x/" + value, method="GET") for value in odd]
    await write(audit_db, records)
    rows = await stored(audit_db)
    assert [r["request_id"] for r in rows] == [v.replace("\x00", "\ufffd") for v in odd]
    assert [r["path"] for r in rows] == ["/x/" + v.replace("\x00", "\ufffd") for v in odd]
    assert (await verify(audit_db)).ok


async def test_an_edited_record_is_reported(chain: AsyncEngine) -> None:
    await sql(chain, "UPDATE proxy.audit_log SET status = 403 WHERE seq = 5")

    report = await verify(chain)

    assert report.problem is not None
    assert (report.problem.seq, report.problem.reason) == (5, "edited")
    assert report.checked == 4


async def test_an_edited_record_whose_hash_was_recomputed_breaks_the_next_link(chain: AsyncEngine) -> None:
    rows = await stored(chain)
    forged = {**rows[4], "status": 403}
    await sql(
        chain,
        "UPDATE proxy.audit_log SET status = 403, hash = :hash WHERE seq = 5",
        hash=audit.link_hash(rows[3]["hash"], forged),
    )

    problem = (await verify(chain)).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (6, "unlinked")


async def test_a_deleted_record_in_the_middle_is_reported(chain: AsyncEngine) -> None:
    await sql(chain, "DELETE FROM proxy.audit_log WHERE seq IN (4, 5)")

    problem = (await verify(chain)).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (4, "missing")
    assert "records 4 to 5" in problem.detail


async def test_deleted_newest_records_are_reported(chain: AsyncEngine) -> None:
    await sql(chain, "DELETE FROM proxy.audit_log WHERE seq >= 9")

    problem = (await verify(chain)).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (9, "missing")
    assert "newest" in problem.detail


CONTENT = (
    "at, request_id, user_id, owner_id, installation_id, cat_id, api_key_id, method, path, decision, "
    "status, upstream_status, latency_ms, bytes_in, bytes_out"
)


@pytest.mark.parametrize("columns", [CONTENT, CONTENT + ", prev_hash, hash"], ids=["content", "whole-rows"])
async def test_two_swapped_records_are_reported(chain: AsyncEngine, columns: str) -> None:
    assignments = ", ".join(f"{c} = other.{c}" for c in columns.split(", "))
    await sql(
        chain,
        f"UPDATE proxy.audit_log AS a SET {assignments} "
        "FROM proxy.audit_log AS other WHERE (a.seq, other.seq) IN ((3, 4), (4, 3))",
    )

    problem = (await verify(chain)).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (3, "reordered")


async def test_a_record_added_behind_the_writers_back_is_reported(chain: AsyncEngine) -> None:
    await sql(
        chain,
        "INSERT INTO proxy.audit_log SELECT 11, at, request_id, user_id, owner_id, installation_id, cat_id, "
        "api_key_id, method, path, decision, status, upstream_status, latency_ms, bytes_in, bytes_out, hash, hash "
        "FROM proxy.audit_log WHERE seq = 10",
    )

    problem = (await verify(chain)).problem

    assert problem is not None
    assert (problem.seq, problem.reason) == (11, "unexpected")


async def test_an_empty_log_verifies(audit_db: AsyncEngine) -> None:
    report = await verify(audit_db)
    assert report.ok
    assert report.checked == 0


async def test_verify_reads_in_batches(chain: AsyncEngine) -> None:
    assert (await verify(chain, batch_size=3)).checked == 10
    await sql(chain, "UPDATE proxy.audit_log SET path = '/elsewhere' WHERE seq = 7")
    problem = (await verify(chain, batch_size=3)).problem
    assert problem is not None
    assert problem.seq == 7


# --- retention ---------------------------------------------------------------------------------

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)


async def prune_at(engine: AsyncEngine, cutoff: datetime, limit: int = 5000) -> int:
    async with sessionmaker(engine)() as session, session.begin():
        return await prune(session, cutoff, limit=limit)


async def test_pruning_keeps_the_rest_verifiable(audit_db: AsyncEngine) -> None:
    await write(audit_db, [audit_record(at=OLD, request_id=f"old-{i}") for i in range(6)])
    await write(audit_db, [audit_record(at=NOW, request_id=f"new-{i}") for i in range(4)])

    assert await prune_at(audit_db, NOW - timedelta(days=90)) == 6

    assert [r["seq"] for r in await stored(audit_db)] == [7, 8, 9, 10]
    report = await verify(audit_db)
    assert report.ok, report.problem
    assert (report.checked, report.pruned_through_seq) == (4, 6)
    await write(audit_db, [audit_record()])
    assert (await verify(audit_db)).checked == 5
    assert await prune_at(audit_db, NOW - timedelta(days=90)) == 0


async def test_the_anchor_still_catches_the_oldest_kept_record_deleted(audit_db: AsyncEngine) -> None:
    await write(audit_db, [audit_record(at=OLD), audit_record(at=OLD), audit_record(), audit_record()])
    await prune_at(audit_db, NOW - timedelta(days=1))

    await sql(audit_db, "DELETE FROM proxy.audit_log WHERE seq = 3")

    problem = (await verify(audit_db)).problem
    assert problem is not None
    assert (problem.seq, problem.reason) == (3, "missing")


async def test_pruning_deletes_only_a_prefix_of_the_chain(audit_db: AsyncEngine) -> None:
    await write(audit_db, [audit_record(at=OLD), audit_record(at=NOW), audit_record(at=OLD)])

    assert await prune_at(audit_db, NOW - timedelta(days=1)) == 1

    assert [r["seq"] for r in await stored(audit_db)] == [2, 3]
    assert (await verify(audit_db)).ok


async def test_pruning_refuses_to_delete_tampered_records(audit_db: AsyncEngine) -> None:
    await write(audit_db, [audit_record(at=OLD) for _ in range(3)])
    await sql(audit_db, "UPDATE proxy.audit_log SET decision = 'no_permission' WHERE seq = 2")

    with pytest.raises(ChainBroken) as refused:
        await prune_at(audit_db, NOW)

    assert refused.value.problem.seq == 2
    assert len(await stored(audit_db)) == 3


async def test_prune_expired_goes_in_small_transactions(audit_db: AsyncEngine) -> None:
    await write(audit_db, [audit_record(at=OLD) for _ in range(7)] + [audit_record(at=NOW)])

    pruned = await prune_expired(sessionmaker(audit_db), 90, limit=3)

    assert pruned == 7
    report = await verify(audit_db)
    assert report.ok
    assert (report.checked, report.pruned_through_seq) == (1, 7)


# --- the command line --------------------------------------------------------------------------


def cathouse(args: list[str], database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = cathouse_env(tmp_path, {"COLUMNS": "200"}, database_url=database_url)
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.e2e
async def test_the_cli_verifies_then_reports_the_first_bad_record(
    chain: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    intact = cathouse(["audit", "verify"], database_url, tmp_path)
    assert intact.returncode == 0, intact.stderr
    assert "no problem, 10 records checked" in intact.stdout

    await sql(chain, "UPDATE proxy.audit_log SET bytes_out = 0 WHERE seq = 6")
    tampered = cathouse(["audit", "verify"], database_url, tmp_path)
    assert tampered.returncode == 1, tampered.stderr
    assert "seq 6 (edited)" in tampered.stdout


@pytest.mark.e2e
async def test_the_cli_prunes_past_the_retention(audit_db: AsyncEngine, database_url: str, tmp_path: Path) -> None:
    await write(audit_db, [audit_record(at=OLD), audit_record(at=OLD), audit_record()])

    pruned = cathouse(["audit", "prune", "--older-than-days", "30"], database_url, tmp_path)

    assert pruned.returncode == 0, pruned.stderr
    assert "Pruned 2 audit records" in pruned.stdout
    assert (await verify(audit_db)).checked == 1


# --- redaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("user=42&page=2", "user=42&page=2"),
        ("token=abc&user=42", "token=[redacted]&user=42"),
        ("access_token=a&refresh_token=b", "access_token=[redacted]&refresh_token=[redacted]"),
        ("API_KEY=a&apikey=b", "API_KEY=[redacted]&apikey=[redacted]"),
        ("x_api_key=a&xApiKey=b&APIKey=c", "x_api_key=[redacted]&xApiKey=[redacted]&APIKey=[redacted]"),
        ("key=a&sort_key=b", "key=[redacted]&sort_key=b"),
        ("code=a&country_code=fr", "code=[redacted]&country_code=fr"),
        ("password=a&passwd=b&client_secret=c", "password=[redacted]&passwd=[redacted]&client_secret=[redacted]"),
        ("sig=a&signature=b&X-Amz-Signature=c", "sig=[redacted]&signature=[redacted]&X-Amz-Signature=[redacted]"),
        ("auth=a&Authorization=b&credentials=c", "auth=[redacted]&Authorization=[redacted]&credentials=[redacted]"),
        ("session=a&sessionid=b&apitoken=c", "session=[redacted]&sessionid=[redacted]&apitoken=[redacted]"),
        ("api%5Fkey=a&q=a+b%20c", "api%5Fkey=[redacted]&q=a+b%20c"),
        ("token=&token&token=x", "token=&token&token=[redacted]"),
        ("a=1&&b=2&token=x=y", "a=1&&b=2&token=[redacted]"),
        ("monkey=banana&tokenizer=on", "monkey=banana&tokenizer=on"),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_redact_query_hides_the_cats_own_credential_parameter() -> None:
    assert redact_query("UserKey=s3cr3t&team=blue", extra=["userkey"]) == "UserKey=[redacted]&team=blue"


def test_audit_path_joins_the_redacted_query() -> None:
    assert audit_path("/v1/points") == "/v1/points"
    assert audit_path("/v1/points", "token=abc&n=1") == "/v1/points?token=[redacted]&n=1"


# --- the endpoint ------------------------------------------------------------------------------


@dataclass
class AuditScene:
    client: httpx.AsyncClient
    owner: Account
    stranger: Account
    admin: Account
    first: uuid.UUID  # the owner's installations
    second: uuid.UUID
    theirs: uuid.UUID  # the stranger's
    cat: uuid.UUID


@pytest.fixture(scope="module")
async def scene(engine: AsyncEngine, settings: Settings) -> AsyncIterator[AuditScene]:
    # The proxy with only this router, whatever else its app wires in (the gateway, its lifespan).
    proxy = Service(name=PROXY.name, metadata=PROXY.metadata, migrations=PROXY.migrations, routers=(audit_router,))
    app = create_app([SERVICES["auth"], proxy], settings=settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                owner = await signed_up(client)
                stranger = await signed_up(client)
                admin = await signed_up(client, roles=("admin",), engine=engine)
                yield AuditScene(client, owner, stranger, admin, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    finally:
        await truncate_all(engine)


@pytest.fixture
async def calls(scene: AuditScene, engine: AsyncEngine) -> AsyncIterator[AuditScene]:
    """Nine calls: five to the owner's first installation (two rate limited), two to their
    second, two to the stranger's; a minute apart, oldest first."""
    await truncate_schemas(engine, ["proxy"])
    owner, stranger = uuid.UUID(scene.owner.id), uuid.UUID(scene.stranger.id)
    plan = [
        *[(owner, scene.first, "allowed", 200)] * 3,
        *[(owner, scene.first, "rate_limited", 429)] * 2,
        *[(owner, scene.second, "allowed", 200)] * 2,
        *[(stranger, scene.theirs, "no_permission", 403)] * 2,
    ]
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    records = [
        audit_record(
            at=start + timedelta(minutes=i),
            request_id=f"call-{i}",
            user_id=who,
            owner_id=who,
            installation_id=installation,
            cat_id=scene.cat if installation == scene.first else uuid.uuid4(),
            decision=decision,
            status=status,
        )
        for i, (who, installation, decision, status) in enumerate(plan)
    ]
    await write(engine, records)
    yield scene
    await truncate_schemas(engine, ["proxy"])


async def read(scene: AuditScene, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = await scene.client.get("/api/v1/proxy/audit", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["request_id"] for i in items]


async def test_owners_read_their_installations_newest_first(calls: AuditScene) -> None:
    items = await read(calls, calls.owner)

    assert ids(items) == [f"call-{i}" for i in range(6, -1, -1)]
    assert {i["owner_id"] for i in items} == {calls.owner.id}
    assert "hash" not in items[0]
    assert items[0]["seq"] == 7


async def test_another_user_sees_none_of_them(calls: AuditScene) -> None:
    assert ids(await read(calls, calls.stranger)) == ["call-8", "call-7"]
    assert await read(calls, calls.stranger, installation_id=str(calls.first)) == []


async def test_admins_read_everything(calls: AuditScene) -> None:
    assert ids(await read(calls, calls.admin)) == [f"call-{i}" for i in range(8, -1, -1)]


async def test_filters(calls: AuditScene) -> None:
    owner = calls.owner
    assert ids(await read(calls, owner, installation_id=str(calls.second))) == ["call-6", "call-5"]
    assert ids(await read(calls, owner, decision="rate_limited")) == ["call-4", "call-3"]
    assert len(await read(calls, owner, cat_id=str(calls.cat))) == 5
    window = {"since": "2026-05-01T12:02:00Z", "until": "2026-05-01T14:04:00+02:00"}
    assert ids(await read(calls, owner, **window)) == ["call-3", "call-2"]
    assert ids(await read(calls, owner, since="2026-05-01T12:08:00")) == []
    assert ids(await read(calls, calls.admin, decision="no_permission", since="2026-05-01T12:08:00")) == ["call-8"]
    # A window that ends before it starts holds nothing; one past what a datetime holds, everything.
    assert await read(calls, owner, since="2026-05-02T00:00:00Z", until="2026-05-01T00:00:00Z") == []
    edges = {"since": "0001-01-01T00:00:00+05:00", "until": "9999-12-31T23:59:59-05:00"}
    assert len(await read(calls, owner, **edges)) == 7
    assert await read(calls, owner, until="0001-01-01T00:00:00+05:00") == []


async def test_cursor_pages_neither_overlap_nor_skip(calls: AuditScene) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await calls.client.get("/api/v1/proxy/audit", params=params, headers=calls.admin.headers)
        body = response.json()
        assert len(body["items"]) <= 2
        seen += ids(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"call-{i}" for i in range(8, -1, -1)]
    assert pages == 5


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"decision": "maybe"}, 422),
        ({"since": "yesterday"}, 422),
        ({"installation_id": "not-a-uuid"}, 422),
        ({"since": "1777636800"}, 422),
        ({"until": "0.5"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 101}, 422),
        ({"cursor": "%%%"}, 422),
        ({"cursor": "WyJ4Il0"}, 422),
        ({"cursor": "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDBd"}, 422),
    ],
)
async def test_bad_filters_are_refused_as_problems(calls: AuditScene, params: dict[str, Any], status: int) -> None:
    response = await calls.client.get("/api/v1/proxy/audit", params=params, headers=calls.owner.headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


async def test_signing_in_is_required(calls: AuditScene) -> None:
    response = await calls.client.get("/api/v1/proxy/audit")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_writer_waits_out_an_outage_of_any_length() -> None:
    # Doubling without a bound overflowed a float after about 1,000 failures in a row and ended
    # the loop that retries: the audit writer (and the checkpoint store) stopped for good.
    assert [retry_delay(n, 0.1, 5.0) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert retry_delay(10, 0.1, 5.0) == 5.0
    assert retry_delay(1_000_000, 0.1, 5.0) == 5.0
