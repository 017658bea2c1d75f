from __future__ import annotations

from cathouse.platform.errors import Conflict, NotFound


class CatNotFound(NotFound):
    """Also the answer for a cat the caller may not see: its existence is not disclosed."""

    def __init__(self) -> None:
        super().__init__("There is no such cat.")


class AssetNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("There is no such image.")


class VersionNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("The cat has no such version.")


class SlugTaken(Conflict):
    def __init__(self, slug: str) -> None:
        super().__init__(f"The slug '{slug}' is taken; choose another.")


class VersionExists(Conflict):
    def __init__(self, version: str) -> None:
        super().__init__(f"Version {version} exists already; versions never change once added.")


class IllegalTransition(Conflict):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"A cat that is {status.replace('_', ' ')} cannot be {action}.", current_status=status)


class VersionNotDraft(Conflict):
    def __init__(self, version: str) -> None:
        super().__init__(f"Version {version} is published; published versions never change. Add a new version.")
