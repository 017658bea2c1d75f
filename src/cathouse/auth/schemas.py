from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    UrlConstraints,
    field_validator,
)

from cathouse.auth.passwords import MAX_LENGTH, MIN_LENGTH, password_problem
from cathouse.platform.schemas import Email as PlatformEmail
from cathouse.platform.schemas import HttpsUrl, NonBlankLine, NotNull, Prose, Strict
from cathouse.platform.security import Role

LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$"
_LOCALE = re.compile(LOCALE_PATTERN)


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _time_zone_enum(schema: dict[str, Any]) -> None:
    """Every IANA zone, with a member name per zone for SDK generators: their own spelling of
    ``GMT+0``, ``GMT-0`` and ``GMT0`` is the same name, which stops them."""
    zones = sorted(_time_zones())
    names = [
        re.sub(r"\W+", "_", re.sub(r"([+-])(?=\d)", lambda m: "_PLUS_" if m[1] == "+" else "_MINUS_", z)).upper()
        for z in zones
    ]
    assert len(set(names)) == len(names), "two time zones share a member name"
    schema.update({"enum": zones, "x-enum-varnames": names})


def _time_zone(value: str) -> str:
    if value not in _time_zones():
        raise ValueError("must be an IANA time zone such as Europe/Paris")
    return value


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("must be a language tag such as en, pt-BR or zh-Hant-TW")
    return value


DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=64), NonBlankLine]
Email = Annotated[PlatformEmail, StringConstraints(max_length=320)]
# Signing in takes what was typed: a string that cannot be anyone's email or password is a 401.
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=320)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH * 4)]


def _strong_enough(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(f"The password {problem}.")
    return value


# The lengths count the password as typed, as the schema's do; a blocklist is no schema's business.
NewPassword = Annotated[
    str, StringConstraints(min_length=MIN_LENGTH, max_length=MAX_LENGTH), AfterValidator(_strong_enough)
]


_PASSWORD = "violet tabby on the windowsill"  # noqa: S105 - an example in the API docs


class RegisterIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": _PASSWORD, "display_name": "Ada"}]}
    )

    email: Email
    password: NewPassword = Field(description=f"8 to {MAX_LENGTH} characters, not a commonly used password.")
    display_name: DisplayName


class LoginIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com", "password": _PASSWORD}]})

    email: LoginEmail
    password: Password


class RefreshIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "rt_3q2-7wEXAMPLEa1JzWl0mPq8"}]})

    # Long enough that a misplaced access token is refused as a token (401), not as a field.
    refresh_token: str = Field(min_length=1, max_length=8192)


class TokenPair(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": "rt_3q2-7wEXAMPLEa1JzWl0mPq8",
                    "refresh_expires_in": 2592000,
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    refresh_expires_in: int


class Validated(BaseModel):
    """Who a valid access token speaks for (forward-auth)."""

    user_id: uuid.UUID
    roles: list[Role]


class UserOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b7e4c1e-4f7a-4d0e-9a57-3f6f1d2c8a10",
                    "email": "ada@example.com",
                    "display_name": "Ada",
                    "bio": None,
                    "avatar_url": None,
                    "locale": "en-GB",
                    "time_zone": "Europe/London",
                    "roles": ["user"],
                    "status": "active",
                    "email_verified": False,
                    "created_at": "2026-05-01T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    email: str
    display_name: str
    bio: str | None
    avatar_url: str | None
    locale: str | None
    time_zone: str | None
    roles: list[Role]
    status: Literal["active", "disabled", "deleted"]
    email_verified: bool
    created_at: datetime


class ProfileUpdate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "display_name": "Ada L.",
                    "bio": "Runs the points team.",
                    "locale": "en-GB",
                    "time_zone": "Europe/London",
                }
            ]
        }
    )

    display_name: Annotated[DisplayName | None, NotNull()] = None
    bio: Annotated[str, StringConstraints(max_length=500), Prose] | None = None
    avatar_url: Annotated[HttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["https"]), HttpsUrl()] | None = None
    locale: (
        Annotated[
            str,
            StringConstraints(max_length=35),
            AfterValidator(_locale),
            Field(json_schema_extra={"pattern": LOCALE_PATTERN}),
        ]
        | None
    ) = None
    time_zone: (
        Annotated[
            str,
            StringConstraints(max_length=64),
            AfterValidator(_time_zone),
            Field(json_schema_extra=_time_zone_enum),
        ]
        | None
    ) = None

    @field_validator("display_name")
    @classmethod
    def _name_cannot_be_cleared(cls, value: str | None) -> str:
        # The other fields may be cleared with null; every account keeps a name.
        if value is None:
            raise ValueError("cannot be null; every account has a display name")
        return value


class PasswordChange(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"current_password": _PASSWORD, "new_password": "ginger tom in the garden"}]}
    )

    current_password: Password
    new_password: NewPassword


class AccountDeletion(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"password": _PASSWORD}]})

    password: Password


class RolesIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"roles": ["developer"]}]})

    roles: list[Literal["developer", "admin"]] = Field(
        max_length=2, description="Roles beyond `user`, which every account has."
    )
