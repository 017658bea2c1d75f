"""Connecting an installation at its cat's OAuth 2.0 provider from its page.

``POST /installations/{id}/connect`` (a form with the CSRF token, shown while the installation
waits for its first grant or after the provider refused its grant) asks the API for a fresh
authorization (``POST /api/v1/installations/{id}/oauth/reconnect``, coming back to the page) and
sends the browser to the provider with a 303. The provider sends the browser to the API's
callback, which answers with a 303 back to the page, saying how it went (``oauth.returned``).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cathouse.web.installs import _target, to_provider
from cathouse.web.session import CheckedForm, VisitDep

router = APIRouter(include_in_schema=False)


@router.post("/installations/{installation_id}/connect")
async def connect(visit: VisitDep, form: CheckedForm, installation_id: str) -> Response:
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    return await to_provider(visit, found)
