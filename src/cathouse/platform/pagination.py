"""Cursor pagination: opaque cursors over a stable sort key, never offsets."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from cathouse.platform.errors import Unprocessable

T = TypeVar("T")

MAX_LIMIT = 100


class InvalidCursor(Unprocessable):
    """A cursor no page of this list gave out: refused as any other malformed query value. (Opaque
    by design, so the schema cannot tell a good one from a bad one: it says only "a string".)"""

    def __init__(self, message: str = "is not valid; use a previous page's next_cursor") -> None:
        super().__init__("query.cursor", message)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; absent on the last one.")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not isinstance(values, list) or len(values) != size:
        raise InvalidCursor()
    return values


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) keyset most newest-first lists page by."""
    created, ident = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (TypeError, ValueError):
        raise InvalidCursor() from None


def encode_time_cursor(created_at: datetime, ident: uuid.UUID) -> str:
    return encode_cursor([created_at.isoformat(), str(ident)])
