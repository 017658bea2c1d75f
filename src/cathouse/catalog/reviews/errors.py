from __future__ import annotations

from cathouse.platform.errors import Conflict, Forbidden, NotFound


class ReviewNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("There is no such review.")


class AlreadyReviewed(Conflict):
    def __init__(self) -> None:
        super().__init__("You have reviewed this cat already; edit your review instead.")


class CannotReviewOwnCat(Forbidden):
    def __init__(self) -> None:
        super().__init__("Publishers cannot review their own cats.")
