from __future__ import annotations

from cathouse.platform.errors import Conflict, Forbidden, NotFound, Unauthorized


class InvalidCredentials(Unauthorized):
    """The one answer to every failed login: unknown email, wrong password, locked account."""

    commit = True  # the failure count must be kept

    def __init__(self) -> None:
        super().__init__("The email or password is incorrect.")


class InvalidRefreshToken(Unauthorized):
    commit = True  # a reused token revokes its family, and that must be kept

    def __init__(self) -> None:
        super().__init__("The refresh token is not valid; sign in again.")


class AccountInactive(Unauthorized):
    def __init__(self) -> None:
        super().__init__("This account is disabled or deleted.")


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("An account with this email exists already.")


class UserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("There is no such user.")


class CannotChangeOwnAdmin(Forbidden):
    def __init__(self) -> None:
        super().__init__("Admins cannot remove their own admin role or disable themselves.")


class WrongPassword(Forbidden):
    def __init__(self) -> None:
        super().__init__("The current password is incorrect.")
