from __future__ import annotations

from cathouse.platform.errors import Conflict, Forbidden, NotFound


class ReviewNotFound(NotFound):
    """There is no such review."""

    def __init__(self) -> None:
        super().__init__("There is no such review.")


class AlreadyReviewed(Conflict):
    """You have reviewed this cat already; edit your review instead."""

    def __init__(self) -> None:
        super().__init__("You have reviewed this cat already; edit your review instead.")


class CannotReviewOwnCat(Forbidden):
    """Publishers cannot review their own cats."""

    def __init__(self) -> None:
        super().__init__("Publishers cannot review their own cats.")
