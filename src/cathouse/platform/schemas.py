"""Building blocks every service's API models share.

What a field refuses, its published schema says: a client (or a fuzzer) that sends what the
schema allows is not refused for it. Text is therefore checked as sent (length, control
characters, blankness) and only then stripped, and a field that may be left out but not
cleared is published without ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import email_validator
from pydantic import BaseModel, ConfigDict, EmailStr, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same sets for the published patterns (ECMA-262 and Python read \uXXXX alike).
_LINE_CHAR = r"[^\u0000-\u001f\u007f]"
_PROSE_CHAR = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
_VISIBLE = r"[^\s\u0000-\u001f\u007f]"


def no_control_characters(value: str) -> str:
    """For single-line text: a name, a title."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def no_control_characters_but_newlines(value: str) -> str:
    """For prose: a description, a review."""
    if _CONTROL_EXCEPT_NEWLINES.search(value):
        raise ValueError("must not contain control characters other than tabs and newlines")
    return value


@dataclass(frozen=True)
class Text:
    """A string's own rules, checked on the string as sent and published as its ``pattern``: no
    control characters (``prose`` may hold tabs and newlines), at least one visible character
    unless ``blank``; then surrounding white space is stripped (unless not ``strip``). Lengths (``StringConstraints``
    beside it) count the string as sent, as the schema's do."""

    prose: bool = False
    blank: bool = True
    strip: bool = True

    @property
    def pattern(self) -> str:
        char = _PROSE_CHAR if self.prose else _LINE_CHAR
        return f"^{char}*$" if self.blank else f"^{char}*{_VISIBLE}{char}*$"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the string schema refuses it
        value = (no_control_characters_but_newlines if self.prose else no_control_characters)(value)
        if not self.blank and not value.strip():
            raise ValueError("must not be blank")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner = handler(source)
        if self.strip:
            inner = core_schema.no_info_after_validator_function(str.strip, inner)
        return core_schema.no_info_before_validator_function(self._check, inner)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        published = handler(schema)
        published["pattern"] = self.pattern
        return published


SingleLine = Text()
Prose = Text(prose=True)
NonBlankLine = Text(blank=False)
NonBlankProse = Text(prose=True, blank=False)


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# What email-validator refuses beyond the syntax `format: email` stands for: the special-use
# domains (RFC 6761 and kin), in any case. Published as what an email must `not` match, so the
# schema refuses them too and a generator starts from an email, not from a pattern.
_SPECIAL_USE = "|".join(_any_case(d) for d in sorted(email_validator.SPECIAL_USE_DOMAIN_NAMES))
SPECIAL_USE_DOMAIN_PATTERN = rf"[@.]({_SPECIAL_USE})\.?$"
Email = Annotated[EmailStr, Field(json_schema_extra={"not": {"pattern": SPECIAL_USE_DOMAIN_PATTERN}})]


# An https URL, as its published pattern says (the scheme is case-insensitive). Where a field
# also takes plain http when the platform allows it for development (CATHOUSE_CATALOG__ALLOW_HTTP),
# its schema carries HTTP_IN_DEVELOPMENT and the published document says which rule holds.
HTTPS_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]://"
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://"
HTTP_IN_DEVELOPMENT = "x-http-in-development"


def HttpsUrl(*, http_in_development: bool = False) -> Any:
    """``Annotated[HttpUrl, UrlConstraints(...), HttpsUrl()]``: publishes the https rule."""
    extra: dict[str, Any] = {"pattern": HTTPS_URL_PATTERN}
    if http_in_development:
        extra[HTTP_IN_DEVELOPMENT] = True
    return Field(json_schema_extra=extra)


def settle_http_urls(node: Any, *, allow_http: bool) -> None:
    """Say in a published document which URL rule holds: each schema marked HTTP_IN_DEVELOPMENT
    takes http too when ``allow_http``, and loses the mark either way."""
    if isinstance(node, dict):
        if node.pop(HTTP_IN_DEVELOPMENT, False) and allow_http:
            node["pattern"] = HTTP_URL_PATTERN
        for value in node.values():
            settle_http_urls(value, allow_http=allow_http)
    elif isinstance(node, list):
        for item in node:
            settle_http_urls(item, allow_http=allow_http)


def _without_null(schema: dict[str, Any]) -> None:
    branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)


def NotNull(description: str | None = None) -> Any:
    """A field of a partial update that may be left out but not sent as ``null`` (the model refuses
    null): published as optional and not nullable. ``name: Annotated[Name | None, NotNull()] = None``"""
    return Field(description=description, json_schema_extra=_without_null)


def examples_of(model: str, *examples: dict[str, Any]) -> Callable[[dict[str, Any], type[Any]], None]:
    """``json_schema_extra`` giving ``examples`` to the model named ``model`` and not to its
    subclasses, whose fields differ (an example there would be invalid)."""

    def extra(schema: dict[str, Any], cls: type[Any]) -> None:
        if cls.__name__ == model:
            schema["examples"] = list(examples)

    return extra


class Strict(BaseModel):
    """Unknown fields are refused, so no one can slip ``roles`` or ``id`` into a request."""

    model_config = ConfigDict(extra="forbid")
