"""What every event model shares: the class-level constants the outbox writer reads, and a
payload that serializes to the JSON the outbox stores."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class DomainEvent(BaseModel):
    """One event's payload. Subclasses set ``type``, ``schema_version`` and ``aggregate``, and say
    which payload field names the aggregate (``aggregate_key``)."""

    # Extra fields are ignored: a producer may add a field without raising the version.
    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    aggregate: ClassVar[str]
    aggregate_key: ClassVar[str]
    # Fields that appear in the payload only when they have a value (None: left out).
    sometimes: ClassVar[frozenset[str]] = frozenset()

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_key))

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self.sometimes:
                if data.get(key, 0) is None:
                    del data[key]
        return data

    def payload(self) -> dict[str, Any]:
        """The payload as the outbox stores it (JSON: UUIDs as strings, aliases as names)."""
        return self.model_dump(mode="json")
