from __future__ import annotations

from cathouse.platform.errors import Conflict, NotFound


class InstallationNotFound(NotFound):
    """There is no such installation, or none of yours (another's existence is not disclosed)."""

    def __init__(self) -> None:
        super().__init__("There is no such installation.")


class NoSuchCat(NotFound):
    """There is no such published cat."""

    def __init__(self) -> None:
        super().__init__("There is no such published cat.")


class NoSuchVersion(NotFound):
    """The cat has no such published version."""

    def __init__(self) -> None:
        super().__init__("The cat has no such published version.")


class NameTaken(Conflict):
    """You already have an installation of that name; choose another."""

    def __init__(self, name: str) -> None:
        super().__init__(f"You already have an installation named '{name}'; choose another name.")
