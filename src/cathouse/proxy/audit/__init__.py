"""The audit log: one record per call through the proxy, chained by hashes so that editing,
deleting or reordering a stored record shows.

The hot path builds an :class:`AuditRecord` and hands it to :meth:`AuditWriter.record`, which
only appends to a queue; the writer's task stores the queue in batches. Each record's hash
covers the previous record's hash and the record's own canonical bytes, its ``seq`` included,
so the stored rows form one chain. Its head (``proxy.audit_chain``, one row) is locked by every
flush, which is what keeps the chain linear when several proxy processes write at once.
"""

from cathouse.proxy.audit.chain import append, canonical, link_hash
from cathouse.proxy.audit.records import DECISIONS, GENESIS_HASH, MAX_PATH, UUID_FIELDS, AuditRecord, Decision
from cathouse.proxy.audit.redact import REDACTED, audit_path, looks_secret, redact_query
from cathouse.proxy.audit.verify import (
    Break,
    ChainBroken,
    VerifyReport,
    prune,
    prune_expired,
    prune_forever,
    verify,
)
from cathouse.proxy.audit.writer import AuditWriter

__all__ = [
    "DECISIONS",
    "GENESIS_HASH",
    "MAX_PATH",
    "REDACTED",
    "UUID_FIELDS",
    "AuditRecord",
    "AuditWriter",
    "Break",
    "ChainBroken",
    "Decision",
    "VerifyReport",
    "append",
    "audit_path",
    "canonical",
    "link_hash",
    "looks_secret",
    "prune",
    "prune_expired",
    "prune_forever",
    "redact_query",
    "verify",
]
