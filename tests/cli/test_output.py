"""A command's result goes to stdout, its logs and diagnostics to stderr: ``cathouse audit verify
> report.txt`` keeps the report, and the JSON log lines stay out of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import cathouse_env

pytestmark = pytest.mark.e2e


def cathouse(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_the_result_goes_to_stdout_and_the_logs_to_stderr(tmp_path: Path) -> None:
    # The embedded database, which logs at INFO when it starts: a log line every run has.
    env = cathouse_env(tmp_path, {"CATHOUSE_LOG_LEVEL": "INFO"}, database_url=None)
    assert cathouse(["migrate"], env).returncode == 0

    verified = cathouse(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr
    assert "Audit chain" in verified.stdout
    assert "Intact: no problem, 0 records checked." in verified.stdout
    logs = [json.loads(line) for line in verified.stderr.splitlines()]
    assert "embedded PostgreSQL ready" in [entry["message"] for entry in logs]
    assert "Intact" not in verified.stderr
    assert '"level"' not in verified.stdout

    refused = cathouse(["keys", "retire", "1"], env)  # the current master-key version: refused
    assert refused.returncode == 1
    assert "Refused" in refused.stderr
    assert refused.stdout == ""
