"""Checkpoints of the audit chain: whoever owns the database can rewrite the chain so that plain
``verify`` passes; the checkpoints the proxy signed with a key the database never holds still
tell. Each rewrite below is made as the owner, recomputing hashes with ``link_hash`` exactly as
the writer does, and plain verification passes before the checkpoints show it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cathouse.cli import app as cli
from cathouse.platform.db import sessionmaker
from cathouse.platform.settings import Environment, Settings
from cathouse.proxy.audit import (
    AuditWriter,
    Checkpoint,
    Checkpointer,
    CheckpointReport,
    CheckpointStore,
    DirectoryStore,
    ObjectStore,
    VerifyReport,
    link_hash,
    prune_expired,
    store_from_settings,
    verify,
    verify_with_checkpoints,
)
from cathouse.proxy.audit.signing import PublicKey, Signer, SigningKeyError, load_signer, write_new_key
from cathouse.proxy.models import AuditLog
from tests.proxy.conftest import audit_record
from tests.support import cathouse_env, free_port

OLD = datetime.now(UTC) - timedelta(days=100)


@dataclass
class Signed:
    """A chain written by a writer that signs a checkpoint every five records, and its checkpoints."""

    engine: AsyncEngine
    signer: Signer
    store: CheckpointStore
    public_pem: Path

    async def write(self, count: int, **fields: Any) -> None:
        """``count`` records in batches of five, each batch a transaction and a checkpoint."""
        checkpoints = Checkpointer(self.signer, self.store, every=5, interval=3600)
        writer = AuditWriter(self.engine, batch_size=5, flush_interval=60, checkpoints=checkpoints)
        for start in range(0, count, 5):
            for _ in range(min(5, count - start)):
                writer.record(audit_record(**fields))
            await writer.flush()
        assert await writer.stop() == 0
        assert checkpoints.pending == 0, "every checkpoint stored"

    async def check(self, *, now: datetime | None = None) -> tuple[VerifyReport, CheckpointReport]:
        return await verify_with_checkpoints(
            self.engine, self.store, [self.signer.public], retention_days=90, interval=60, now=now
        )


def new_signer(directory: Path) -> Signer:
    path = directory / "audit-signing.pem"
    assert write_new_key(path)
    return load_signer(path)


@pytest.fixture
async def signed(audit_db: AsyncEngine, tmp_path: Path) -> Signed:
    """Thirty records, seq 1 to 30, and checkpoints at 5, 10, ... 30: intact both ways."""
    signer = new_signer(tmp_path)
    public_pem = tmp_path / "audit-public.pem"
    public_pem.write_text(signer.public.pem)
    scene = Signed(audit_db, signer, DirectoryStore(tmp_path / "checkpoints"), public_pem)
    await scene.write(30)
    report, against = await scene.check()
    assert report.ok, report.problem
    assert (report.checked, against.total, against.matched, against.problem) == (30, 6, 6, None)
    return scene


# --- rewriting the chain as the database's owner ------------------------------------------------


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        found = await conn.execute(select(AuditLog.__table__).order_by(AuditLog.seq))
        return [dict(r) for r in found.mappings()]


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement), params)


async def relink(engine: AsyncEngine, start: int) -> None:
    """Recompute every hash from ``start`` on, and the head, as the writer would have."""
    async with engine.begin() as conn:
        head = (await conn.execute(text("SELECT pruned_through_seq, pruned_through_hash FROM proxy.audit_chain"))).one()
        before = await conn.scalar(text("SELECT hash FROM proxy.audit_log WHERE seq = :s"), {"s": start - 1})
        prev = before if before is not None else head.pruned_through_hash
        records = await conn.execute(select(AuditLog.__table__).where(AuditLog.seq >= start).order_by(AuditLog.seq))
        last = start - 1
        for row in list(records.mappings()):
            digest = link_hash(prev, row)
            await conn.execute(
                text("UPDATE proxy.audit_log SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row["seq"]},
            )
            prev, last = digest, row["seq"]
        await conn.execute(text("UPDATE proxy.audit_chain SET last_seq = :s, last_hash = :h"), {"s": last, "h": prev})


async def cut_the_tail(engine: AsyncEngine) -> None:
    await sql(engine, "DELETE FROM proxy.audit_log WHERE seq > 22")
    await sql(
        engine,
        "UPDATE proxy.audit_chain SET last_seq = 22, last_hash = (SELECT hash FROM proxy.audit_log WHERE seq = 22)",
    )


async def edit_one(engine: AsyncEngine) -> None:
    await sql(engine, "UPDATE proxy.audit_log SET decision = 'no_permission', status = 403 WHERE seq = 12")
    await relink(engine, 12)


async def append_a_forgery(engine: AsyncEngine) -> None:
    last = (await rows(engine))[-1]
    forged = {**last, "seq": last["seq"] + 1, "request_id": "forged", "path": "/refund?all=1"}
    forged["prev_hash"], forged["hash"] = last["hash"], link_hash(last["hash"], forged)
    async with engine.begin() as conn:
        await conn.execute(insert(AuditLog).values(**forged))
        await conn.execute(
            text("UPDATE proxy.audit_chain SET last_seq = :s, last_hash = :h"),
            {"s": forged["seq"], "h": forged["hash"]},
        )


async def delete_one_and_renumber(engine: AsyncEngine) -> None:
    await sql(engine, "DELETE FROM proxy.audit_log WHERE seq = 12")
    # In two steps: seq is the primary key, checked row by row.
    await sql(engine, "UPDATE proxy.audit_log SET seq = -seq WHERE seq > 12")
    await sql(engine, "UPDATE proxy.audit_log SET seq = -seq - 1 WHERE seq < 0")
    await relink(engine, 12)


async def delete_the_oldest(engine: AsyncEngine) -> None:
    await sql(
        engine,
        "UPDATE proxy.audit_chain SET pruned_through_seq = 10, pruned_through_hash = "
        "(SELECT hash FROM proxy.audit_log WHERE seq = 10)",
    )
    await sql(engine, "DELETE FROM proxy.audit_log WHERE seq <= 10")


async def empty_everything(engine: AsyncEngine) -> None:
    await sql(engine, "DELETE FROM proxy.audit_log")
    await sql(engine, "DELETE FROM proxy.audit_chain")


REWRITES: dict[str, tuple[Callable[[AsyncEngine], Awaitable[None]], str]] = {
    "tail deleted, head moved back": (
        cut_the_tail,
        "checkpoint at seq 25 ({at}), but the chain ends at 22: records deleted",
    ),
    "one record edited, the rest rehashed": (edit_one, "checkpoint at seq 15 ({at}) names hash"),
    "one record deleted, the rest renumbered": (delete_one_and_renumber, "checkpoint at seq 15 ({at}) names hash"),
    "the oldest deleted, the anchor moved": (
        delete_the_oldest,
        "inside the 90-day retention, but the chain is pruned through seq 10: records deleted",
    ),
    "log and head emptied": (empty_everything, "checkpoint at seq 5 ({at}), but the chain is empty: records deleted"),
}


@pytest.mark.parametrize("name", list(REWRITES))
async def test_a_rewrite_that_plain_verify_accepts_does_not_fit_the_checkpoints(signed: Signed, name: str) -> None:
    rewrite, expected = REWRITES[name]
    checkpoints = {c.seq: c for c in (entry.checkpoint for entry in await signed.store.load()) if c is not None}

    await rewrite(signed.engine)

    assert (await verify(signed.engine)).ok, "the rewrite is consistent: the chain alone shows nothing"
    report, against = await signed.check()
    assert report.ok
    assert against.problem is not None
    seq = int(expected.split("seq ")[1].split(" ")[0]) if "{at}" in expected else None
    at = f"{checkpoints[seq].at:%Y-%m-%dT%H:%M:%SZ}" if seq is not None else ""
    assert expected.format(at=at) in against.problem


async def test_a_rewritten_record_is_placed_after_the_last_checkpoint_that_fits(signed: Signed) -> None:
    await edit_one(signed.engine)
    _, against = await signed.check()
    assert against.problem is not None
    record_15 = next(r for r in await rows(signed.engine) if r["seq"] == 15)
    assert f"the record there has hash {record_15['hash'].hex()}: rewritten" in against.problem
    assert "the checkpoint at seq 10 before it still fits" in against.problem


async def test_a_forged_record_the_proxy_then_chained_after_is_claimed_by_no_checkpoint(signed: Signed) -> None:
    await append_a_forgery(signed.engine)
    await signed.write(5)  # the proxy carries on after it, and signs seq 36

    assert (await verify(signed.engine)).ok
    _, meanwhile = await signed.check()
    assert meanwhile.ok, "another proxy process may sign seq 31 within the cadence"
    _, later = await signed.check(now=datetime.now(UTC) + timedelta(minutes=5))
    assert later.problem is not None
    assert later.problem.startswith("record 31 is claimed by no checkpoint, though later records are")


async def test_a_forged_record_at_the_tail_is_newer_than_every_checkpoint_after_the_cadence(signed: Signed) -> None:
    await append_a_forgery(signed.engine)
    assert (await verify(signed.engine)).ok

    _, meanwhile = await signed.check()
    assert meanwhile.ok, "within the cadence a record may wait for its checkpoint"
    _, later = await signed.check(now=datetime.now(UTC) + timedelta(minutes=5))
    assert later.problem is not None
    assert later.problem.startswith("record 31 is newer than every checkpoint")
    assert "forged" in later.problem


async def test_pruning_past_the_retention_is_no_false_alarm(audit_db: AsyncEngine, tmp_path: Path) -> None:
    scene = Signed(audit_db, new_signer(tmp_path), DirectoryStore(tmp_path / "checkpoints"), tmp_path / "x.pem")
    await scene.write(15, at=OLD)
    await scene.write(10)

    assert await prune_expired(sessionmaker(audit_db), 90) == 15

    report, against = await scene.check()
    assert report.ok
    assert report.pruned_through_seq == 15
    # 5 and 10 were pruned; 15 is the anchor itself, compared with its hash; 20 and 25 with records.
    assert (against.total, against.pruned, against.matched, against.problem) == (5, 2, 3, None)


async def test_checkpoints_of_several_writers_interleave_and_each_fits(audit_db: AsyncEngine, tmp_path: Path) -> None:
    signer, store = new_signer(tmp_path), DirectoryStore(tmp_path / "checkpoints")
    writers = [
        AuditWriter(audit_db, batch_size=3, flush_interval=60, checkpoints=Checkpointer(signer, store, every=4))
        for _ in range(2)
    ]
    for turn in range(8):
        writer = writers[turn % 2]
        for _ in range(3):
            writer.record(audit_record())
        await writer.flush()
    for writer in writers:
        assert await writer.stop() == 0

    claimed = sorted(run for e in await store.load() if e.checkpoint is not None for run in e.checkpoint.ranges)
    assert claimed == [(1, 3), (4, 6), (7, 9), (10, 12), (13, 15), (16, 18), (19, 21), (22, 24)]
    report, against = await verify_with_checkpoints(
        audit_db, store, [signer.public], retention_days=90, interval=60, now=datetime.now(UTC) + timedelta(hours=1)
    )
    assert report.checked == 24
    assert against.problem is None
    assert against.matched == against.total


# --- the checkpoints themselves ------------------------------------------------------------------


def edit_line(store: DirectoryStore, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    (path,) = store.directory.glob("*.jsonl")
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        fields = json.loads(line)
        if fields["seq"] == seq:
            change(fields)
            lines[i] = json.dumps(fields)
    path.write_text("\n".join(lines) + "\n")


async def test_a_checkpoint_edited_in_its_file_is_reported_forged(signed: Signed) -> None:
    assert isinstance(signed.store, DirectoryStore)
    record_20 = next(r for r in await rows(signed.engine) if r["seq"] == 20)
    await sql(signed.engine, "UPDATE proxy.audit_log SET status = 500 WHERE seq = 20")
    await relink(signed.engine, 20)
    # Someone who rewrote the chain also "fixes" the checkpoints, without the key.
    new_hashes = {r["seq"]: r["hash"].hex() for r in await rows(signed.engine)}
    for seq in (20, 25, 30):
        edit_line(signed.store, seq, lambda f, s=seq: f.update(hash=new_hashes[s]))  # type: ignore[misc]
    assert new_hashes[20] != record_20["hash"].hex()

    _, against = await signed.check()
    assert against.problem is not None
    assert "checkpoint at seq 20" in against.problem
    assert against.problem.endswith("signature invalid: forged (or edited after signing)")


async def test_a_checkpoint_signed_by_another_key_is_not_taken(signed: Signed, tmp_path: Path) -> None:
    other = new_signer(tmp_path / "other")
    await signed.store.put(Checkpoint.sign(other, seq=30, hash_=b"\x01" * 32, records=30, record_at=OLD, ranges=()))

    _, against = await signed.check()
    assert against.problem is not None
    assert f"is signed by key {other.public.key_id}, not by a key given ({signed.signer.public.key_id})" in (
        against.problem
    )


async def test_an_unreadable_line_is_named(signed: Signed) -> None:
    assert isinstance(signed.store, DirectoryStore)
    (path,) = signed.store.directory.glob("*.jsonl")
    with path.open("a") as out:
        out.write('{"v":1,"seq":"thirty"}\n')

    _, against = await signed.check()
    assert against.problem == f"{path.name} line 7: not a checkpoint (seq: Input should be a valid integer)"


def test_a_checkpoint_is_one_json_line_and_reads_back_the_same(tmp_path: Path) -> None:
    signer = new_signer(tmp_path)
    made = Checkpoint.sign(signer, seq=7, hash_=bytes(range(32)), records=7, record_at=OLD, ranges=((1, 3), (6, 7)))
    line = made.line()
    assert "\n" not in line
    assert list(json.loads(line)) == ["v", "seq", "hash", "records", "at", "record_at", "ranges", "key_id", "signature"]
    again = Checkpoint.model_validate_json(line)
    assert again == made
    assert again.signed_by(signer.public)


# --- the writer, its key and where it puts checkpoints ---------------------------------------


async def test_the_proxys_writer_makes_its_development_key_once_and_signs_into_the_data_dir(
    audit_db: AsyncEngine, make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url)
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message} {extra}", level="INFO")
    try:
        writer = AuditWriter.from_settings(audit_db, settings)
        await writer.start()
        for _ in range(3):
            writer.record(audit_record())
        assert await writer.stop() == 0
    finally:
        logger.remove(sink)

    key = settings.secrets_dir / "audit-signing.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert writer.checkpoints is not None
    assert load_signer(key).public == writer.checkpoints.signer.public
    assert AuditWriter.from_settings(audit_db, settings).checkpoints.signer.public == writer.checkpoints.signer.public  # type: ignore[union-attr]
    (day,) = (settings.data_dir / "audit-checkpoints").glob("*.jsonl")
    (checkpoint,) = [Checkpoint.model_validate_json(line) for line in day.read_text().splitlines()]
    assert (checkpoint.seq, checkpoint.records, checkpoint.ranges) == (3, 3, ((1, 3),))
    assert day.name == f"{checkpoint.at:%Y-%m-%d}.jsonl"
    (logged,) = [line for line in lines if line.startswith("audit checkpoint")]
    assert checkpoint.signature in logged
    assert "PRIVATE" not in "".join(lines)
    _, against = await verify_with_checkpoints(
        audit_db, store_from_settings(settings), [writer.checkpoints.signer.public], retention_days=90, interval=60
    )
    assert against.ok
    assert against.matched == 1


def test_production_refuses_to_run_without_a_configured_key(settings: Settings, tmp_path: Path) -> None:
    production = settings.model_copy(update={"env": Environment.PRODUCTION, "data_dir": tmp_path})
    with pytest.raises(SigningKeyError, match="CATHOUSE_AUDIT__SIGNING_KEY must name"):
        Checkpointer.from_settings(production)
    assert not (tmp_path / "secrets").exists(), "no key generated where nobody would keep it"


def test_a_configured_key_is_read_as_pem_or_raw_seed(settings: Settings, tmp_path: Path) -> None:
    pem = new_signer(tmp_path)
    raw = tmp_path / "seed"
    raw.write_bytes(bytes(range(32)))
    for path in (tmp_path / "audit-signing.pem", raw):
        configured = settings.model_copy(update={"audit": settings.audit.model_copy(update={"signing_key": path})})
        assert Checkpointer.from_settings(configured).signer.public == load_signer(path).public
    assert load_signer(tmp_path / "audit-signing.pem").public == pem.public
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(SigningKeyError, match="neither a PEM Ed25519 private key nor a raw 32-byte seed"):
        load_signer(tmp_path / "junk")


# --- S3 --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, spoken to over HTTP as a real bucket would be."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        httpx.put(f"{endpoint}/cathouse-test-audit").raise_for_status()
        yield endpoint
    finally:
        server.stop()


async def test_checkpoints_in_s3_one_object_each(
    audit_db: AsyncEngine, s3_endpoint: str, settings: Settings, tmp_path: Path
) -> None:
    in_s3 = settings.model_copy(
        update={
            "s3_bucket": "cathouse-test-audit",
            "s3_endpoint_url": s3_endpoint,
            "s3_access_key_id": SecretStr("test-key"),
            "s3_secret_access_key": SecretStr("test-secret"),
            "audit": settings.audit.model_copy(update={"s3_prefix": f"run-{uuid.uuid4().hex[:8]}/"}),
        }
    )
    store = store_from_settings(in_s3)
    assert isinstance(store, ObjectStore)
    scene = Signed(audit_db, new_signer(tmp_path), store, tmp_path / "x.pem")
    await scene.write(12)

    loaded = await store.load()
    assert [e.checkpoint.seq for e in loaded if e.checkpoint is not None] == [5, 10, 12]
    assert all(e.where.endswith(".json") for e in loaded)
    _, against = await scene.check()
    assert against.ok
    assert against.matched == 3

    await edit_one(audit_db)
    _, against = await scene.check()
    assert against.problem is not None
    assert "checkpoint at seq 12" in against.problem
    assert "rewritten" in against.problem


# --- the command line ----------------------------------------------------------------------


def test_verify_with_checkpoints_through_typer(
    signed: Signed, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(signed.store, DirectoryStore)
    assert settings.database_url is not None
    monkeypatch.setenv("COLUMNS", "300")
    configured = Settings(
        _env_file=None,
        env=Environment.TEST,
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        log_level="WARNING",
    )
    monkeypatch.setattr("cathouse.cli.audit.get_settings", lambda: configured)
    args = ["audit", "verify", "--checkpoints", str(signed.store.directory), "--public-key", str(signed.public_pem)]

    intact = CliRunner().invoke(cli, args)
    assert intact.exit_code == 0, intact.output
    assert "6 (6 matched to the chain, 0 before the prune anchor)" in intact.output
    assert "no problem, 30 records and 6 checkpoints checked" in intact.output

    edit_line(signed.store, 10, lambda f: f.update(records=9))
    forged = CliRunner().invoke(cli, args)
    assert forged.exit_code == 1, forged.output
    assert "checkpoint at seq 10" in forged.output
    assert "signature invalid: forged" in forged.output


@pytest.mark.e2e
async def test_the_cli_names_the_checkpoint_that_does_not_fit(
    signed: Signed, database_url: str, tmp_path: Path
) -> None:
    assert isinstance(signed.store, DirectoryStore)

    def cathouse(*args: str) -> subprocess.CompletedProcess[str]:
        env = cathouse_env(tmp_path / "data", {"COLUMNS": "300"}, database_url=database_url)
        return subprocess.run(
            [sys.executable, "-m", "cathouse", *args], env=env, capture_output=True, text=True, check=False
        )

    where = ["--checkpoints", str(signed.store.directory), "--public-key", str(signed.public_pem)]
    intact = await asyncio.to_thread(cathouse, "audit", "verify", *where)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "no problem, 30 records and 6 checkpoints checked" in intact.stdout

    await cut_the_tail(signed.engine)
    plain = await asyncio.to_thread(cathouse, "audit", "verify")
    assert plain.returncode == 0, "the chain alone looks intact"
    tampered = await asyncio.to_thread(cathouse, "audit", "verify", *where)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "but the chain ends at 22: records deleted" in tampered.stdout

    missing = ["--checkpoints", str(tmp_path / "missing"), "--public-key", str(signed.public_pem)]
    nowhere = await asyncio.to_thread(cathouse, "audit", "verify", *missing)
    assert nowhere.returncode == 2
    assert "is not a directory" in nowhere.stderr
    keyless = await asyncio.to_thread(cathouse, "audit", "verify", "--checkpoints", str(signed.store.directory))
    assert keyless.returncode == 2
    assert "no public key: set CATHOUSE_AUDIT__SIGNING_KEY, or pass --public-key FILE" in keyless.stderr


async def test_the_public_key_endpoint_serves_the_signing_key(
    service_client: Callable[[str], Any], settings: Settings
) -> None:
    async with service_client("proxy") as client:
        answer = await client.get("/api/v1/proxy/audit/public-key")
        spec = (await client.get("/api/v1/openapi.json")).json()
    assert answer.status_code == 200
    body = answer.json()
    expected = load_signer(settings.secrets_dir / "audit-signing.pem").public
    assert body["algorithm"] == "Ed25519"
    assert body["key_id"] == expected.key_id
    assert PublicKey.from_pem(body["pem"].encode(), "answer") == expected
    operation = spec["paths"]["/api/v1/proxy/audit/public-key"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("AuditPublicKey")
