"""Why an OAuth 2.0 authorization was refused. The refusals of a returning owner carry where the
pages asked to be sent back (``return_to``), so a browser lands on a page that says why."""

from __future__ import annotations

from typing import ClassVar

from cathouse.platform.errors import CatHouseError, Conflict, Forbidden


class FlowRefusal(CatHouseError):
    """A refusal at the callback: the state it spent is kept spent (the transaction commits)."""

    commit: ClassVar[bool] = True
    code: str = "refused"

    def __init__(self, detail: str, return_to: str | None = None, **extra: object) -> None:
        super().__init__(detail, **extra)
        self.return_to = return_to


class StateInvalid(FlowRefusal):
    """The state is unknown, used already, or expired."""

    status = 400
    title = "Bad Request"

    def __init__(self, reason: str, detail: str, return_to: str | None = None) -> None:
        super().__init__(detail, return_to, reason=reason)
        self.code = f"state_{reason}"


class ConsentDenied(FlowRefusal):
    """The owner did not grant access at the provider."""

    status = 403
    title = "Forbidden"
    code = "denied"

    def __init__(self, error: str, return_to: str | None = None) -> None:
        super().__init__(
            f"Access was not granted at the provider ({error[:64]}); the installation is unchanged.",
            return_to,
            error=error[:64],
        )


class ProviderFailed(FlowRefusal):
    """The provider's token endpoint refused the code or failed."""

    status = 502
    title = "Bad Gateway"
    code = "provider_failed"

    def __init__(self, why: str, return_to: str | None = None) -> None:
        super().__init__(f"The cat's provider did not issue tokens: {why}. Try connecting again.", return_to)


class StateOfAnotherUser(Forbidden):
    """The authorization was started by another user: only they can complete it."""

    def __init__(self) -> None:
        super().__init__("This authorization was started by another user; it is not yours to complete.")


class NotOAuth(Conflict):
    """The installation's cat does not connect through an OAuth 2.0 authorization."""

    def __init__(self) -> None:
        super().__init__("This installation's cat does not connect through an OAuth 2.0 authorization.")


class NoOAuthClient(Conflict):
    """The cat's publisher has not set its OAuth client yet."""

    def __init__(self) -> None:
        super().__init__("The cat's publisher has not set its OAuth client yet; try again later.")
