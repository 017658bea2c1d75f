"""What the pages say about an OAuth 2.0 cat: whether its owner grants access at a provider,
the provider's name, where the browser goes to grant it, and how a return from it went.

The words for a return come from a fixed table keyed by the code the API's callback put in the
URL (``?oauth=connected``, ``?oauth_error=denied``): a code the table does not know shows
nothing, so a crafted link cannot make the page say what it likes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

CONNECTED = "Access was granted at the provider: the installation is connected."
ERRORS = {
    "denied": "You did not grant access at the provider; nothing changed. Connect again when ready.",
    "provider_failed": "The provider did not issue access after you came back; nothing changed. Try connecting again.",
    "state_used": "That authorization was already used; nothing changed. Connect again if it is not connected.",
    "state_expired": "The authorization took too long and expired; nothing changed. Connect again.",
    "state_inactive": "The installation could not be connected in its current status; nothing changed.",
    "state_unknown": "That authorization was not started here; nothing changed. Connect from this page.",
}
# The statuses in which the owner may (re)connect, as the API's flow allows them from the pages.
CONNECTABLE = frozenset({"authorizing", "credentials_invalid"})


def grant_of(version: dict[str, Any] | None) -> str | None:
    """``authorization_code`` or ``client_credentials`` for an OAuth 2.0 version, else None."""
    credentials = (version or {}).get("credentials") or {}
    if credentials.get("type") != "oauth2":
        return None
    return str(credentials.get("grant") or "authorization_code")


def provider_of(version: dict[str, Any] | None) -> str:
    """The provider as a person recognises it: the host of its authorization page."""
    url = ((version or {}).get("credentials") or {}).get("authorization_url") or ""
    return urlsplit(str(url)).netloc or "the cat's provider"


def described(version: dict[str, Any] | None) -> dict[str, str] | None:
    """``{"grant", "provider"}`` for a page about an installation of an OAuth 2.0 version, else None."""
    grant = grant_of(version)
    return {"grant": grant, "provider": provider_of(version)} if grant else None


def returned(oauth: str | None, oauth_error: str | None) -> tuple[str | None, str | None]:
    """(notice, problem) for a return from the provider; (None, None) for anything else."""
    if oauth_error is not None:
        return None, ERRORS.get(oauth_error)
    return (CONNECTED if oauth == "connected" else None), None
