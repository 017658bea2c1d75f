"""Who is calling: access-token verification and the typed dependencies endpoints declare."""

from cathouse.platform.security.dependencies import (
    AdminUser,
    BrowserUser,
    CurrentUser,
    DeveloperUser,
    OptionalBrowserUser,
    OptionalUser,
)
from cathouse.platform.security.principal import Principal, Role
from cathouse.platform.security.tokens import (
    InvalidToken,
    JwksKeySource,
    KeySource,
    KeysUnavailable,
    TokenVerifier,
    VerificationKey,
)

__all__ = [
    "AdminUser",
    "BrowserUser",
    "CurrentUser",
    "DeveloperUser",
    "InvalidToken",
    "JwksKeySource",
    "KeySource",
    "KeysUnavailable",
    "OptionalBrowserUser",
    "OptionalUser",
    "Principal",
    "Role",
    "TokenVerifier",
    "VerificationKey",
]
