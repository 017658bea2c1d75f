from __future__ import annotations

from cathouse.platform.errors import Conflict, NotFound


class InstallationNotFound(NotFound):
    """Also the answer for another user's installation: its existence is not disclosed."""

    def __init__(self) -> None:
        super().__init__("There is no such installation.")


class NoSuchCat(NotFound):
    def __init__(self) -> None:
        super().__init__("There is no such published cat.")


class NoSuchVersion(NotFound):
    def __init__(self) -> None:
        super().__init__("The cat has no such published version.")


class NameTaken(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"You already have an installation named '{name}'; choose another name.")
