"""Installing a cat, and looking after what one installed.

Installing: ``/cats/{slug}/install`` shows what the cat's current version asks for, the
required permissions as a list and the optional ones as checkboxes left unticked (nothing is
granted that the person did not tick), and a form made from the version's settings schema
(``settings_form``). Posting it is ``POST /api/v1/installations``; the person then lands on the
installation's page, whose status panel asks again every second (htmx) while the platform
provisions it, and reloads the page once the status settles.

Looking after: ``/installations`` lists them; ``/installations/{id}`` shows the grants, the API
keys, the provisioning deliveries and the calls per day, with the actions the status allows.
Every action is a form with the CSRF token, one call to the installation API, and a redirect
back (303). Creating an API key is the exception: its answer is the page itself, the one time
the key is shown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cathouse.web import charts, oauth, settings_form
from cathouse.web.api import Api, ApiProblem
from cathouse.web.session import CheckedForm, Visit, VisitDep, form_text

router = APIRouter(include_in_schema=False)

T = TypeVar("T")
PAGE_SIZE = 20
DELIVERIES_SHOWN = 10
CHART_DAYS = 14
# Calls per day come from the audit log, a page of 100 records at a time: past this many pages
# the chart says it counted only part of a busy fortnight instead of slowing the page down.
AUDIT_PAGES = 5
# Statuses the platform moves on by itself: the page keeps asking while the installation is in one.
MOVING = frozenset({"pending", "provisioning", "uninstalling"})
GONE = frozenset({"uninstalling", "uninstalled"})
STATUS_WORDS = {
    "authorizing": "Waiting for you to grant access at the cat's provider",
    "pending": "Waiting to be set up",
    "provisioning": "Being set up by the cat",
    "active": "Active",
    "failed": "Setting up failed",
    "suspended": "Suspended",
    "permissions_pending": "Waiting for you to accept new permissions",
    "credentials_invalid": "The cat refused its credentials",
    "uninstalling": "Being uninstalled",
    "uninstalled": "Uninstalled",
}
ACTIONS = {"retry": "Setting up again.", "suspend": "Suspended.", "resume": "Resumed."}


def _installation_id(value: str) -> str | None:
    """The id as the API spells it, or None when it is not one (that page does not exist)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _target(visit: Visit, installation_id: str) -> str | Response:
    """The installation a page or form is about, or the answer when there is none to act on:
    not an id, or nobody signed in (who signs in and comes back to the installation's page)."""
    found = _installation_id(installation_id)
    if found is None:
        return _not_found(visit)
    if not visit.signed_in:
        return visit.redirect(f"/sign-in?next=/installations/{found}")
    return found


def _not_found(visit: Visit) -> Response:
    return visit.refused(ApiProblem(404, "Not Found", "There is no such installation."))


async def _or_none(call: Awaitable[T]) -> T | None:
    """What a part of a page shows, or None when that part cannot be read (the rest still is)."""
    try:
        return await call
    except ApiProblem:
        return None


# Installing.


def _install_context(
    cat: dict[str, Any], version: dict[str, Any], values: dict[str, str], ticked: set[str]
) -> dict[str, Any]:
    permissions = version["permissions"]
    return {
        "cat": cat,
        "version": version,
        "required": [p for p in permissions if p["required"]],
        "optional": [p for p in permissions if not p["required"]],
        "fields": settings_form.fields(version["settings_schema"]),
        "values": values,
        "ticked": ticked,
        "grant": oauth.grant_of(version),
        "provider": oauth.provider_of(version),
    }


@router.get("/cats/{slug}/install")
async def install_page(visit: VisitDep, slug: str) -> Response:
    if not visit.signed_in:
        return visit.to_sign_in()
    try:
        cat = await visit.api.get(f"/api/v1/cats/{slug}")
    except ApiProblem as problem:
        return visit.refused(problem)
    version = cat.get("version")
    if cat.get("status") != "published" or not version:
        return visit.refused(ApiProblem(404, "Not Found", "This cat cannot be installed: it is not published."))
    values = {"name": cat["name"], **settings_form.defaults(settings_form.fields(version["settings_schema"]))}
    return visit.render("installs/install.html", _install_context(cat, version, values, set()))


@router.post("/cats/{slug}/install")
async def install(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    if not visit.signed_in:
        return visit.to_sign_in()
    chosen = form_text(form, "version")
    try:
        cat = await visit.api.get(f"/api/v1/cats/{slug}")
        version = await visit.api.get(f"/api/v1/cats/{slug}/versions/{chosen}") if chosen else cat.get("version")
    except ApiProblem as problem:
        return visit.refused(problem)
    if not version:
        return visit.refused(ApiProblem(404, "Not Found", "This cat cannot be installed: it is not published."))
    settings, secrets, values = settings_form.read(settings_form.fields(version["settings_schema"]), form)
    values["name"] = form_text(form, "name")
    ticked = {p for p in form.getlist("permissions") if isinstance(p, str)}
    granted = [p["name"] for p in version["permissions"] if p["required"] or p["name"] in ticked]
    body = {
        "cat": slug,
        "version": version["version"],
        "name": values["name"],
        "permissions": granted,
        "settings": settings,
        "secrets": secrets,
    }
    try:
        created = await visit.api.post("/api/v1/installations", body)
    except ApiProblem as problem:
        if problem.status == 401:
            return visit.to_sign_in()
        if problem.status == 409 and not problem.fields:
            # The one conflict installing has: a name already taken by another of yours.
            problem.fields["name"] = problem.detail
        context = {**_install_context(cat, version, values, ticked), "problem": problem}
        return visit.render("installs/install.html", context, status=problem.status)
    if created["status"] == "authorizing":
        return await to_provider(visit, str(created["id"]))  # straight on to grant access there
    return visit.redirect(f"/installations/{created['id']}")


async def to_provider(visit: Visit, installation_id: str) -> Response:
    """Send the browser to the cat's provider with a fresh authorization, coming back to the
    installation's page; a refusal (the publisher has set no client yet) is shown on that page."""
    try:
        started = await visit.api.post(
            f"/api/v1/installations/{installation_id}/oauth/reconnect",
            {"return_to": f"/installations/{installation_id}"},
        )
    except ApiProblem as problem:
        if problem.status == 401:
            return visit.to_sign_in()
        return await _installation_page(visit, installation_id, problem=problem, status=problem.status)
    # Not cached: the URL carries a single-use state, good for this browser only.
    answer = visit.redirect(str(started["authorization_url"]))
    answer.headers["Cache-Control"] = "no-store"
    return answer


# My installations.


@router.get("/installations")
async def installations(visit: VisitDep, cursor: str | None = None) -> Response:
    if not visit.signed_in:
        return visit.to_sign_in()
    try:
        page = await visit.api.get("/api/v1/installations", {"cursor": cursor, "limit": PAGE_SIZE})
    except ApiProblem as problem:
        return visit.refused(problem)
    return visit.render("installs/list.html", {"page": page, "words": STATUS_WORDS, "cursor": cursor})


async def calls_per_day(api: Api, installation_id: str, today: date | None = None) -> tuple[list[charts.Bar], bool]:
    """Calls to the installation's cat on each of the last days (UTC), allowed or refused, counted
    from the audit log; and whether the log held more than was counted."""
    last = today or datetime.now(UTC).date()
    first = last - timedelta(days=CHART_DAYS - 1)
    counted: Counter[date] = Counter()
    since = datetime.combine(first, time.min, UTC).isoformat()
    cursor = None
    for _ in range(AUDIT_PAGES):
        page = await api.get(
            "/api/v1/proxy/audit", {"installation_id": installation_id, "since": since, "limit": 100, "cursor": cursor}
        )
        counted.update(datetime.fromisoformat(item["at"]).astimezone(UTC).date() for item in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    days = [first + timedelta(days=n) for n in range(CHART_DAYS)]
    bars = [charts.Bar(day.strftime("%-d %b"), counted[day], day.strftime("%-d")) for day in days]
    return bars, cursor is not None


async def _installation_page(visit: Visit, installation_id: str, *, status: int = 200, **extra: Any) -> Response:
    """The installation's page; ``extra`` adds to what it shows (a new key, a problem, a notice)."""
    api = visit.api
    try:
        installation = await api.get(f"/api/v1/installations/{installation_id}")
    except ApiProblem as problem:
        return visit.refused(problem)
    cat, keys, deliveries, calls = await asyncio.gather(
        _or_none(api.get(f"/api/v1/cats/{installation['cat']['slug']}")),
        _or_none(api.get(f"/api/v1/installations/{installation_id}/api-keys")),
        _or_none(api.get(f"/api/v1/installations/{installation_id}/deliveries", {"limit": DELIVERIES_SHOWN})),
        _or_none(calls_per_day(api, installation_id)),
    )
    bars, partial = calls if calls is not None else (None, False)
    current = (cat or {}).get("version") or {}
    installed = current
    if cat and current.get("version") != installation["version"]:
        # How it connects is the installed version's, which may not be the cat's current one.
        installed = await _or_none(api.get(f"/api/v1/cats/{cat['slug']}/versions/{installation['version']}")) or {}
    asked = current.get("permissions", [])
    context = {
        **_status_context(installation),
        "cat": cat,
        "descriptions": {p["name"]: p["description"] for p in asked},
        "titles": {f.key: f.label for f in settings_form.fields(current.get("settings_schema", {}))},
        "upgrade_to": _upgrade_to(installation, cat),
        "keys": keys,
        "deliveries": deliveries,
        "chart": charts.bar_chart(bars) if bars is not None else None,
        "partial": partial,
        "oauth": oauth.described(installed),
        **extra,
    }
    return visit.render("installs/installation.html", context, status=status)


def _status_context(installation: dict[str, Any]) -> dict[str, Any]:
    return {
        "installation": installation,
        "words": STATUS_WORDS,
        "moving": installation["status"] in MOVING,
        "gone": installation["status"] in GONE,
    }


def _upgrade_to(installation: dict[str, Any], cat: dict[str, Any] | None) -> str | None:
    """The version to move to: one waiting for consent, or the cat's newer current version."""
    if installation["status"] in GONE:
        return None
    if installation.get("target_version"):
        return str(installation["target_version"])
    current = (cat or {}).get("current_version")
    return str(current) if current and current != installation["version"] else None


@router.get("/installations/{installation_id}")
async def installation_page(
    visit: VisitDep,
    installation_id: str,
    done: str | None = None,
    oauth_result: Annotated[str | None, Query(alias="oauth")] = None,
    oauth_error: str | None = None,
) -> Response:
    """``done`` names an action just taken; ``oauth``/``oauth_error`` how a return from the cat's
    provider went (the API's callback sends the browser back here with one of them)."""
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    connected, refused = oauth.returned(oauth_result, oauth_error)
    notice = ACTIONS.get(done or "") or connected
    return await _installation_page(visit, found, notice=notice, oauth_problem=refused)


@router.get("/installations/{installation_id}/status")
async def status_panel(request: Request, visit: VisitDep, installation_id: str) -> Response:
    """The status panel alone, for the page asking while the platform works; once the status
    has settled, htmx is told to reload the page, whose actions and sections depend on it."""
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    try:
        installation = await visit.api.get(f"/api/v1/installations/{found}")
    except ApiProblem as problem:
        return visit.refused(problem)
    context = _status_context(installation)
    answer = visit.render("installs/_status.html", context)
    if not context["moving"] and request.headers.get("hx-request") == "true":
        answer.headers["HX-Refresh"] = "true"
    return answer


# Uninstalling, with a step to confirm it.


@router.get("/installations/{installation_id}/uninstall")
async def uninstall_page(visit: VisitDep, installation_id: str) -> Response:
    return await _confirm_page(visit, installation_id, "installs/uninstall.html")


@router.post("/installations/{installation_id}/uninstall")
async def uninstall(visit: VisitDep, form: CheckedForm, installation_id: str) -> Response:
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    try:
        await visit.api.delete(f"/api/v1/installations/{found}")
    except ApiProblem as problem:
        return await _installation_page(visit, found, problem=problem, status=problem.status)
    return visit.redirect(f"/installations/{found}")


async def _confirm_page(visit: Visit, installation_id: str, template: str) -> Response:
    """A page asking to confirm a step on the installation, with what it needs to say so."""
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    try:
        installation = await visit.api.get(f"/api/v1/installations/{found}")
        cat = await visit.api.get(f"/api/v1/cats/{installation['cat']['slug']}")
        target = _upgrade_to(installation, cat)
        version = await visit.api.get(f"/api/v1/cats/{cat['slug']}/versions/{target}") if target else None
    except ApiProblem as problem:
        return visit.refused(problem)
    granted = {g["permission"] for g in installation["permissions"]}
    asked = (version or {}).get("permissions", [])
    context = {
        "installation": installation,
        "cat": cat,
        "version": version,
        "new": [p for p in asked if p["required"] and p["name"] not in granted],
        "kept": [p for p in asked if p["name"] in granted],
        "dropped": sorted(granted - {p["name"] for p in asked}),
    }
    return visit.render(template, context)


# Upgrading, with consent to what the new version asks for.


@router.get("/installations/{installation_id}/upgrade")
async def upgrade_page(visit: VisitDep, installation_id: str) -> Response:
    return await _confirm_page(visit, installation_id, "installs/upgrade.html")


@router.post("/installations/{installation_id}/upgrade")
async def upgrade(visit: VisitDep, form: CheckedForm, installation_id: str) -> Response:
    """Move to the version the person saw on the upgrade page, accepting what it asks for: they
    consented there, so an upgrade that waits for consent is accepted at once."""
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    version = form_text(form, "version")
    base = f"/api/v1/installations/{found}"
    try:
        installation = await visit.api.get(base)
        if installation.get("target_version") != version:
            installation = await visit.api.post(f"{base}/upgrade", {"version": version})
        if installation["status"] == "permissions_pending" and installation.get("target_version") == version:
            await visit.api.post(f"{base}/permissions/accept")
    except ApiProblem as problem:
        return await _installation_page(visit, found, problem=problem, status=problem.status)
    return visit.redirect(f"/installations/{found}")


# API keys.


@router.post("/installations/{installation_id}/api-keys")
async def create_key(visit: VisitDep, form: CheckedForm, installation_id: str) -> Response:
    found = _target(visit, installation_id)
    if isinstance(found, Response):
        return found
    name = form_text(form, "key_name")
    try:
        key = await visit.api.post(f"/api/v1/installations/{found}/api-keys", {"name": name})
    except ApiProblem as problem:
        if "name" in problem.fields:
            problem.fields["key_name"] = problem.fields.pop("name")
        return await _installation_page(visit, found, key_problem=problem, key_name=name, status=problem.status)
    # Answered in place, not redirected: the key is in this page only, and in no URL or log;
    # nor in the browser's cache, for the back button to show again.
    answer = await _installation_page(visit, found, new_key=key)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.post("/installations/{installation_id}/api-keys/{key_id}/revoke")
async def revoke_key(visit: VisitDep, form: CheckedForm, installation_id: str, key_id: str) -> Response:
    found, key = _target(visit, installation_id), _installation_id(key_id)
    if isinstance(found, Response) or key is None:
        return found if isinstance(found, Response) else _not_found(visit)
    try:
        await visit.api.delete(f"/api/v1/installations/{found}/api-keys/{key}")
    except ApiProblem as problem:
        return await _installation_page(visit, found, problem=problem, status=problem.status)
    return visit.redirect(f"/installations/{found}#api-keys")


# Retry, suspend, resume: last, so that the routes above with their own names match first.


@router.post("/installations/{installation_id}/{action}")
async def act(visit: VisitDep, form: CheckedForm, installation_id: str, action: str) -> Response:
    """Retry, suspend or resume: one call, then back to the page saying it was done."""
    found = _target(visit, installation_id)
    if isinstance(found, Response) or action not in ACTIONS:
        return found if isinstance(found, Response) else _not_found(visit)
    body = {"reason": form_text(form, "reason")} if action == "suspend" else None
    try:
        await visit.api.post(f"/api/v1/installations/{found}/{action}", body)
    except ApiProblem as problem:
        return await _installation_page(visit, found, problem=problem, status=problem.status)
    return visit.redirect(f"/installations/{found}?done={action}")
