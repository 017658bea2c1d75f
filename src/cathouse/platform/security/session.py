"""The browser's session: the platform's own tokens, sealed into one cookie.

The web pages sign a person in with the auth API like any client, then keep the token pair in
a cookie sealed with a key derived from the master key (AES-256-GCM: the browser can neither
read nor change it). Nothing is kept on the server, so any replica of the web part, or of a
service, opens it.

A service accepts the cookie only where a browser cannot send a bearer header and the request
changes nothing: the activity stream, read by an ``EventSource``. Everything else still takes
the bearer token (and the pages send it), so the API carries no cross-site request risk.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import asdict, dataclass, replace

from cathouse.platform.crypto import DecryptionError, derive_key, seal, unseal

COOKIE = "cathouse_session"
PURPOSE = "cathouse/web/session/v1"
_ASSOCIATED = COOKIE.encode()


@dataclass(frozen=True)
class WebSession:
    """What the cookie holds: a CSRF token always; the token pair and who it is once signed in."""

    csrf: str
    access_token: str | None = None
    refresh_token: str | None = None
    user_id: str | None = None
    name: str | None = None
    roles: tuple[str, ...] = ()

    @classmethod
    def anonymous(cls) -> WebSession:
        return cls(csrf=secrets.token_urlsafe(24))

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None

    def signed_out(self) -> WebSession:
        """No tokens and a new CSRF token: nothing of the last session's forms works after it."""
        return WebSession.anonymous()

    def with_tokens(self, access_token: str, refresh_token: str) -> WebSession:
        return replace(self, access_token=access_token, refresh_token=refresh_token)


class SessionSeal:
    """Seals a :class:`WebSession` into a cookie value and opens one, refusing anything altered."""

    def __init__(self, master_key: str) -> None:
        self._key = derive_key(master_key, PURPOSE)

    def seal(self, session: WebSession) -> str:
        plain = json.dumps(asdict(session), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(seal(self._key, plain, _ASSOCIATED)).decode().rstrip("=")

    def open(self, value: str | None) -> WebSession | None:
        """The session in ``value``, or None when there is none or it was not sealed with our key."""
        if not value or len(value) > 8192:
            return None
        try:
            sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            data = json.loads(unseal(self._key, sealed, _ASSOCIATED))
            return WebSession(**{**data, "roles": tuple(data.get("roles") or ())})
        except (DecryptionError, binascii.Error, ValueError, TypeError):
            return None
