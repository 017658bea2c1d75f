"""What one audit record holds, the decisions it names, and the audit metrics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from prometheus_client import Counter

from cathouse.proxy.models import Decision

DECISIONS: tuple[str, ...] = get_args(Decision)

# The first record's prev_hash; the migration writes the same value into the head row.
GENESIS_HASH = bytes(32)
# Part of every hash, so a change of the canonical form can never collide with this one.
HASH_DOMAIN = b"cathouse.audit.v1\n"
UUID_FIELDS = ("user_id", "owner_id", "installation_id", "cat_id", "api_key_id")
MAX_PATH = 4096
AUDIT_WRITTEN = Counter("cathouse_proxy_audit_written_total", "Audit records written to the chain.")
AUDIT_LOST = Counter(
    "cathouse_proxy_audit_lost_total",
    "Audit records never written: the queue was full, the record malformed, or shutdown gave up.",
    ["reason"],
)
AUDIT_FLUSH_FAILURES = Counter(
    "cathouse_proxy_audit_flush_failures_total", "Audit batches that failed to write and are retried."
)


@dataclass(slots=True, kw_only=True)
class AuditRecord:
    """One call, as the gateway saw it. ``path`` is already redacted (see :func:`audit_path`)."""

    at: datetime
    request_id: str
    method: str
    path: str
    decision: str
    status: int
    user_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    installation_id: uuid.UUID | None = None
    cat_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    upstream_status: int | None = None
    latency_ms: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


def retry_delay(failures: int, base: float, cap: float) -> float:
    """How long to wait after ``failures`` failed tries in a row: doubling from ``base`` up to
    ``cap``. The exponent is bounded: 2 ** n past about 1,000 no longer fits a float, and an
    outage that long must not end the loop that waits it out."""
    return float(min(cap, base * 2 ** min(max(failures - 1, 0), 32)))
