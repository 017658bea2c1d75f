"""The transactional outbox: events written with the change they describe, relayed after commit."""

from cathouse.platform.outbox.models import OutboxEvent
from cathouse.platform.outbox.writer import Recordable, record, record_event

__all__ = ["OutboxEvent", "Recordable", "record", "record_event"]
