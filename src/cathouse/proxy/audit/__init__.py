"""The audit log: one record per call through the proxy, chained by hashes so that editing,
deleting or reordering a stored record shows.

The hot path builds an :class:`AuditRecord` and hands it to :meth:`AuditWriter.record`, which
only appends to a queue; the writer's task stores the queue in batches. Each record's hash
covers the previous record's hash and the record's own canonical bytes, its ``seq`` included,
so the stored rows form one chain. Its head (``proxy.audit_chain``, one row) is locked by every
flush, which is what keeps the chain linear when several proxy processes write at once.

The writer also signs the head at a cadence, with a key the database never holds, and keeps
these checkpoints outside PostgreSQL (:mod:`.checkpoints`): what an owner of the database could
rewrite consistently, :func:`verify_with_checkpoints` still tells apart.
"""

from cathouse.proxy.audit.chain import Appended, append, canonical, link_hash
from cathouse.proxy.audit.checkpointer import Checkpointer
from cathouse.proxy.audit.checkpoints import (
    Checkpoint,
    CheckpointStore,
    DirectoryStore,
    ObjectStore,
    Stored,
    store_at,
    store_from_settings,
)
from cathouse.proxy.audit.crosscheck import CheckpointReport, verify_with_checkpoints
from cathouse.proxy.audit.records import DECISIONS, GENESIS_HASH, MAX_PATH, UUID_FIELDS, AuditRecord
from cathouse.proxy.audit.redact import REDACTED, audit_path, looks_secret, redact_query
from cathouse.proxy.audit.verify import (
    Break,
    ChainBroken,
    VerifyReport,
    prune,
    prune_expired,
    prune_forever,
    verify,
    walk,
)
from cathouse.proxy.audit.writer import AuditWriter
from cathouse.proxy.models import Decision

__all__ = [
    "DECISIONS",
    "GENESIS_HASH",
    "MAX_PATH",
    "REDACTED",
    "UUID_FIELDS",
    "Appended",
    "AuditRecord",
    "AuditWriter",
    "Break",
    "ChainBroken",
    "Checkpoint",
    "CheckpointReport",
    "CheckpointStore",
    "Checkpointer",
    "Decision",
    "DirectoryStore",
    "ObjectStore",
    "Stored",
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
    "store_at",
    "store_from_settings",
    "verify",
    "verify_with_checkpoints",
    "walk",
]
