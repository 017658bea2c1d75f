"""The activity service's errors."""

from __future__ import annotations

from cathouse.platform.errors import NotFound


class CatNotFound(NotFound):
    """No cat with this slug, or none the caller may see."""

    def __init__(self) -> None:
        super().__init__("No cat with this slug.")
