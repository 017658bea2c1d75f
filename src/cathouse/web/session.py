"""A visit: the person's session cookie opened, an API client acting as them, and the page's answer.

Every page takes a :data:`Visit`. It opens the sealed session cookie (or starts an anonymous
session carrying a CSRF token), gives the page an :class:`~cathouse.web.api.Api` that sends the
session's access token and trades the refresh token for a new pair when the API says the access
token expired, and writes the cookie back on the page's answer whenever the session changed.

Forms that change something post the session's CSRF token (a hidden field, or htmx's
``X-CSRF-Token`` header); :data:`CheckedForm` refuses a post without it.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import replace
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from cathouse.platform.security.dependencies import session_seal
from cathouse.platform.security.session import COOKIE, WebSession
from cathouse.platform.settings import Environment, Settings
from cathouse.web.api import Api, ApiProblem
from cathouse.web.views import render

R = TypeVar("R", bound=Response)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class PageRefused(Exception):
    """A request the pages answer with a page of its own (a form without its CSRF token)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = ApiProblem(status, title, detail)


class Visit:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.settings: Settings = request.app.state.settings
        opened = session_seal(request).open(request.cookies.get(COOKIE))
        self._changed = opened is None
        self.session = opened or WebSession.anonymous()
        self.api = Api(
            request.app.state.web_api,
            token=self.session.access_token,
            visitor=request.client.host if request.client else None,
            refresh=self._refresh,
        )

    # Who is visiting.

    @property
    def signed_in(self) -> bool:
        return self.session.signed_in

    def has_role(self, role: str) -> bool:
        return role in self.session.roles or "admin" in self.session.roles

    # The session.

    async def sign_in(self, access_token: str, refresh_token: str) -> None:
        """Start a signed-in session with this pair (and a new CSRF token)."""
        self.api.token = access_token
        me = await self.api.get("/api/v1/users/me")
        self._replace(
            WebSession(
                csrf=secrets.token_urlsafe(24),
                access_token=access_token,
                refresh_token=refresh_token,
                user_id=str(me["id"]),
                name=str(me["display_name"]),
                roles=tuple(me.get("roles") or ()),
            )
        )

    async def sign_out(self) -> None:
        """End the session here and its refresh-token family at auth."""
        if self.session.refresh_token:
            # The family may have ended already, or auth be away: the cookie goes either way.
            with contextlib.suppress(ApiProblem):
                await self.api.post("/api/v1/auth/logout", {"refresh_token": self.session.refresh_token})
        self.api.token = None
        self._replace(self.session.signed_out())

    def remember_name(self, name: str) -> None:
        self._replace(replace(self.session, name=name))

    async def adopt_roles(self, roles: list[str]) -> None:
        """The roles the API now gives the person (an admin may have granted or taken one since signing in).

        When they changed, the tokens are renewed too: a new access token carries the roles at
        once, where the old one gains them only once every process has heard of the change.
        """
        if tuple(roles) == self.session.roles:
            return
        self._replace(replace(self.session, roles=tuple(roles)))
        fresh = await self._refresh()
        if fresh is not None:
            self.api.token = fresh

    async def _refresh(self) -> str | None:
        """A new access token for an expired one, or None (and signed out) when the session ended."""
        if not self.session.refresh_token:
            return None
        user_agent = self.request.headers.get("user-agent", "")
        try:
            pair = await Api(self.request.app.state.web_api, visitor=self.api.visitor).post(
                "/api/v1/auth/refresh",
                {"refresh_token": self.session.refresh_token},
                headers={"User-Agent": user_agent},
            )
        except ApiProblem as problem:
            if problem.status in (400, 401, 403, 422):
                self._replace(self.session.signed_out())
            return None
        self._replace(self.session.with_tokens(pair["access_token"], pair["refresh_token"]))
        return str(pair["access_token"])

    def _replace(self, session: WebSession) -> None:
        self.session = session
        self._changed = True

    # CSRF.

    def check_csrf(self, form: FormData) -> None:
        sent = form.get(CSRF_FIELD) or self.request.headers.get(CSRF_HEADER) or ""
        if not isinstance(sent, str) or not secrets.compare_digest(sent, self.session.csrf):
            raise PageRefused(
                403,
                "This form has expired",
                "The form was sent without the page's security token, so nothing was changed. "
                "Go back, reload the page and send it again.",
            )

    # Answers.

    def render(self, name: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
        page = render(
            self.request, name, {"visitor": self.session, "csrf": self.session.csrf, **(context or {})}, status
        )
        return self.commit(page)

    def redirect(self, url: str, status: int = 303) -> Response:
        return self.commit(RedirectResponse(url, status_code=status))

    def refused(self, problem: ApiProblem) -> Response:
        """A page the API would not give: back to signing in when the session ended, else why, in words."""
        if problem.status == 401:
            return self.to_sign_in()
        return self.render("problem.html", {"problem": problem}, status=problem.status)

    def to_sign_in(self) -> Response:
        """Off to the sign-in page, coming back here after it."""
        here = self.request.url.path + (f"?{self.request.url.query}" if self.request.url.query else "")
        return self.redirect(f"/sign-in?next={quote(here, safe='/')}")

    def commit(self, response: R) -> R:
        """``response`` carrying the session cookie when the session changed on this visit."""
        if self._changed:
            response.set_cookie(
                COOKIE,
                session_seal(self.request).seal(self.session),
                max_age=self.settings.auth.refresh_token_ttl,
                path="/",
                httponly=True,
                samesite="lax",
                secure=self.settings.env is Environment.PRODUCTION,
            )
        return response


async def _visit(request: Request) -> Visit:
    return Visit(request)


async def _checked_form(request: Request, visit: Annotated[Visit, Depends(_visit)]) -> FormData:
    form = await request.form()
    visit.check_csrf(form)
    return form


def form_text(form: FormData, name: str) -> str:
    """A form field as typed, trimmed; "" when absent or a file."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def role_refusal(visit: Visit, role: str, template: str = "problem.html") -> Response | None:
    """None when the visitor has ``role``; else where they go instead (sign in, or ``template`` with 403).

    A role granted since signing in is read again from the API, and the session adopts it.
    """
    if not visit.signed_in:
        return visit.to_sign_in()
    if visit.has_role(role):
        return None
    try:
        me = await visit.api.get("/api/v1/users/me")
    except ApiProblem as problem:
        return visit.refused(problem)
    await visit.adopt_roles(list(me.get("roles") or ()))
    if visit.has_role(role):
        return None
    refused = ApiProblem(403, "Not for your account", f"This page is for accounts with the {role} role.")
    return visit.render(template, {"problem": refused, "me": me}, status=403)


def local_path(value: str | None, default: str = "/") -> str:
    """``value`` when it is a path on this site, else ``default``: where to go back after signing in."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    return value


VisitDep = Annotated[Visit, Depends(_visit)]
CheckedForm = Annotated[FormData, Depends(_checked_form)]
