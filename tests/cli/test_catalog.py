"""``cathouse catalog sync`` and ``validate`` as an author or operator runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import cathouse_env

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cats"


def cathouse(args: list[str], tmp_path: Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = cathouse_env(tmp_path / "data", {"COLUMNS": "200"}, database_url=database_url)
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, capture_output=True, text=True, check=False
    )


async def test_sync_reports_what_it_did_and_is_idempotent(
    committed: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    first = cathouse(["catalog", "sync", str(EXAMPLES)], tmp_path, database_url)
    assert first.returncode == 0, first.stderr
    assert "8 created, 0 updated, 0 unchanged, 0 failed, 0 orphaned" in first.stdout
    assert "syncing" in first.stderr  # the progress bar, apart from the report
    second = cathouse(["catalog", "sync", str(EXAMPLES)], tmp_path, database_url)
    assert "0 created, 0 updated, 8 unchanged" in second.stdout
    async with committed.connect() as conn:
        published = await conn.scalar(text("SELECT count(*) FROM catalog.cats WHERE status = 'published'"))
    assert published == 8


def test_validate_names_the_file_and_field_of_every_problem(tmp_path: Path) -> None:
    cats = tmp_path / "cats"
    shutil.copytree(EXAMPLES, cats)
    assert cathouse(["catalog", "validate", str(cats)], tmp_path).returncode == 0
    manifest = cats / "badge-forge" / "cat.yaml"
    manifest.write_text(manifest.read_text().replace("version: 2.3.0", "version: one", 1))
    (cats / "quest-board" / "icon.png").unlink()
    done = cathouse(["catalog", "validate", str(cats)], tmp_path)
    assert done.returncode == 1
    assert "badge-forge/cat.yaml" in done.stdout
    assert "versions.0.version" in done.stdout
    assert "quest-board/cat.yaml" in done.stdout
