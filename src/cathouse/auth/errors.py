from __future__ import annotations

from cathouse.platform.errors import Conflict, Forbidden, NotFound, Unauthorized


class InvalidCredentials(Unauthorized):
    """The one answer to every failed login: unknown email, wrong password, locked account."""

    commit = True  # the failure count must be kept

    def __init__(self) -> None:
        super().__init__("The email or password is incorrect.")


class InvalidRefreshToken(Unauthorized):
    """The refresh token is not valid (expired, revoked, or used already): sign in again."""

    commit = True  # a reused token revokes its family, and that must be kept

    def __init__(self) -> None:
        super().__init__("The refresh token is not valid; sign in again.")


class AccountInactive(Unauthorized):
    """The account is disabled or deleted."""

    def __init__(self) -> None:
        super().__init__("This account is disabled or deleted.")


class EmailTaken(Conflict):
    """An account with this email exists already."""

    def __init__(self) -> None:
        super().__init__("An account with this email exists already.")


class UserNotFound(NotFound):
    """There is no such user."""

    def __init__(self) -> None:
        super().__init__("There is no such user.")


class CannotChangeOwnAdmin(Forbidden):
    """Admins cannot remove their own admin role or disable themselves."""

    def __init__(self) -> None:
        super().__init__("Admins cannot remove their own admin role or disable themselves.")


class WrongPassword(Forbidden):
    """The current password is incorrect."""

    def __init__(self) -> None:
        super().__init__("The current password is incorrect.")
