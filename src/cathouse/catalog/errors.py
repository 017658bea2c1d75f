from __future__ import annotations

from cathouse.platform.errors import Conflict, NotFound


class CatNotFound(NotFound):
    """There is no such cat, or none the caller may see (its existence is not disclosed)."""

    def __init__(self) -> None:
        super().__init__("There is no such cat.")


class AssetNotFound(NotFound):
    """There is no such image."""

    def __init__(self) -> None:
        super().__init__("There is no such image.")


class VersionNotFound(NotFound):
    """The cat has no such version."""

    def __init__(self) -> None:
        super().__init__("The cat has no such version.")


class SlugTaken(Conflict):
    """The slug is taken; choose another."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"The slug '{slug}' is taken; choose another.")


class VersionExists(Conflict):
    """The version exists already; versions never change once added."""

    def __init__(self, version: str) -> None:
        super().__init__(f"Version {version} exists already; versions never change once added.")


class IllegalTransition(Conflict):
    """The cat's status does not allow this (`current_status` names it)."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"A cat that is {status.replace('_', ' ')} cannot be {action}.", current_status=status)


class VersionNotDraft(Conflict):
    """The version is published; published versions never change."""

    def __init__(self, version: str) -> None:
        super().__init__(f"Version {version} is published; published versions never change. Add a new version.")
