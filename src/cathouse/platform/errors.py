"""Domain errors. Each carries its HTTP status; one handler renders them as problem+json."""

from __future__ import annotations

from typing import Any, ClassVar


class CatHouseError(Exception):
    """Base of every error a client may see. Subclass per domain failure."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    type: ClassVar[str] = "about:blank"
    # True when the refusal itself must be kept: the request's transaction commits anyway.
    commit: ClassVar[bool] = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(CatHouseError):
    status = 400
    title = "Bad Request"


class Unauthorized(CatHouseError):
    status = 401
    title = "Unauthorized"


class Forbidden(CatHouseError):
    status = 403
    title = "Forbidden"


class NotFound(CatHouseError):
    status = 404
    title = "Not Found"


class Conflict(CatHouseError):
    status = 409
    title = "Conflict"


class TooManyRequests(CatHouseError):
    status = 429
    title = "Too Many Requests"


class ServiceUnavailable(CatHouseError):
    status = 503
    title = "Service Unavailable"


class Unprocessable(CatHouseError):
    """A payload that parses but breaks a rule only the service can check (a category that does
    not exist, plain http where https is required). Rendered like a validation error."""

    status = 422
    title = "Unprocessable Content"

    def __init__(self, loc: str, message: str, type_: str = "value_error") -> None:
        super().__init__(
            f"The request is not valid: {loc}: {message}", errors=[{"loc": loc, "message": message, "type": type_}]
        )
