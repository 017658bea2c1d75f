"""Building blocks every service's API models share."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control_characters(value: str) -> str:
    """For single-line text: a name, a title."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def no_control_characters_but_newlines(value: str) -> str:
    """For prose: a description, a review."""
    if _CONTROL_EXCEPT_NEWLINES.search(value):
        raise ValueError("must not contain control characters other than tabs and newlines")
    return value


class Strict(BaseModel):
    """Unknown fields are refused, so no one can slip ``roles`` or ``id`` into a request."""

    model_config = ConfigDict(extra="forbid")
