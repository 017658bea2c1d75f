"""The activity page: the public feed, and "yours" for a signed-in visitor, live.

Both feeds are the activity API's (``GET /api/v1/activity`` and ``/me``), older pages reached
through plain links carrying the API's cursor, so the page works without JavaScript. With it,
``static/activity.js`` opens the API's event stream (``/api/v1/activity/stream``, which reads
the session cookie) and, on each event, asks this page for the entries newer than the one on
top (``?after=``, an htmx-style request): the server renders them with the same template, and
each tab shows only its own feed, although the stream mixes the public entries and yours.

The stream needs a signed-in visitor (an anonymous one is refused with 401): a visitor who is
not signed in reads the same feed, without live updates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from markupsafe import Markup, escape

from cathouse.contracts.events import auth as users
from cathouse.contracts.events import catalog as cats
from cathouse.contracts.events import installation as installs
from cathouse.contracts.events import proxy as verdicts
from cathouse.web.api import ApiProblem
from cathouse.web.session import Visit, VisitDep

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
# How many of the newest entries are looked through for those above ``after``: more arriving
# between two events than this is unlikely, and the next page load shows them anyway.
NEWER_LOOKED_AT = 50
STREAM = "/api/v1/activity/stream"

# What each event type says, ``{who}`` and ``{cat}`` filled in. A type this list does not know
# (a newer service's) is shown by its name.
PHRASES: dict[str, str] = {
    cats.CatSubmitted.type: "{who} sent {cat} for review",
    cats.CatPublished.type: "{who} published {cat}",
    cats.CatRejected.type: "{cat} was not approved",
    cats.CatUpdated.type: "{who} edited the listing of {cat}",
    cats.CatVersionPublished.type: "A new version of {cat} is out",
    cats.CatSuspended.type: "{cat} was suspended",
    cats.CatReinstated.type: "{cat} is listed again",
    cats.CatDelisted.type: "{cat} was delisted",
    cats.CatSyncFailed.type: "The manifest of {cat} has problems",
    cats.ReviewCreated.type: "{who} reviewed {cat}",
    cats.ReviewUpdated.type: "{who} changed a review of {cat}",
    cats.ReviewDeleted.type: "{who} deleted a review of {cat}",
    cats.ReviewHidden.type: "A review of {cat} was hidden",
    cats.ReviewRestored.type: "A review of {cat} is shown again",
    cats.ReviewReplied.type: "The publisher answered a review of {cat}",
    installs.InstallationCreated.type: "{who} installed {cat}",
    installs.InstallationStatusChanged.type: "An installation of {cat} changed state",
    installs.InstallationPermissionsChanged.type: "The permissions of an installation of {cat} changed",
    installs.InstallationUpgraded.type: "An installation of {cat} was upgraded",
    installs.InstallationUpdated.type: "An installation of {cat} was edited",
    installs.InstallationSecretsReplaced.type: "The secret settings of an installation of {cat} were replaced",
    verdicts.CredentialsRejected.type: "{cat} refused an installation's credentials",
    verdicts.CredentialsAccepted.type: "{cat} accepted an installation's credentials",
    users.UserRegistered.type: "{who} joined Cat House",
    users.UserUpdated.type: "{who} edited their profile",
    users.UserRolesChanged.type: "The roles of {who} changed",
    users.UserDisabled.type: "The account of {who} was disabled",
    users.UserEnabled.type: "The account of {who} was enabled again",
    users.UserDeleted.type: "The account of {who} was deleted",
    users.RefreshTokenReused.type: "A sign-in of {who} was ended: its token was used twice",
}


def sentence(entry: dict[str, Any], me: str | None) -> Markup:
    """What happened, in words, the cat linked to its page: escaped, since names are the users'."""
    phrase = PHRASES.get(entry["type"], entry["type"])
    user, cat = entry.get("user"), entry.get("cat")
    if user is None:  # a cat of the platform's own, or someone who installed a cat
        who = "Cat House" if entry["type"].startswith("cat.") else "Someone"
    elif user["id"] == me:
        who = "You"
    else:
        who = user.get("display_name") or "A deleted user"
    if cat and cat.get("name") and cat.get("slug"):
        link = Markup('<a href="/cats/{}">{}</a>').format(cat["slug"], cat["name"])
    else:  # the cat is gone: its slug then, as it was
        link = escape((cat or {}).get("slug") or ("A cat" if phrase.startswith("{cat}") else "a cat"))
    return escape(phrase).format(who=who, cat=link)


def details(entry: dict[str, Any]) -> list[str]:
    """The few facts the entry carries that a person reads (besides its stars): versions, states, reasons."""
    data = entry.get("data") or {}
    found = []
    if data.get("version"):
        found.append(f"version {data['version']}")
    if data.get("from") and data.get("to"):
        found.append(f"{data['from']} → {data['to']}")
    if data.get("reason"):
        found.append(f"reason: {data['reason']}")
    return found


def when(value: str) -> str:
    """An entry's moment, to the minute, in UTC (the time the API gives; no visitor's zone is known)."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


def _href(path: str, **params: str | None) -> str:
    """``path`` with the ``params`` that have a value: the feed's links keep the page size asked for."""
    given = {k: v for k, v in params.items() if v}
    return f"{path}?{urlencode(given)}" if given else path


async def _feed(request: Request, visit: Visit, path: str, tab: str) -> Response:
    api, query, here = visit.api, request.query_params, request.url.path
    cursor, after, limit = query.get("cursor"), query.get("after") or "", query.get("limit")
    context: dict[str, Any] = {"tab": tab, "cursor": cursor, "sentence": sentence, "details": details, "when": when}
    live = request.headers.get("hx-request") == "true" and bool(after)
    try:
        page = await api.get(path, {"cursor": cursor, "limit": NEWER_LOOKED_AT if live else limit or PAGE_SIZE})
    except ApiProblem as problem:
        if live:
            return visit.commit(Response(status_code=problem.status))
        return visit.render("activity.html", {**context, "problem": problem}, status=problem.status)
    if live:
        above = int(after) if after.isdigit() else 0
        return visit.render("_activity.html", {**context, "entries": [e for e in page["items"] if e["id"] > above]})
    older = page["next_cursor"] and _href(here, cursor=page["next_cursor"], limit=limit)
    return visit.render(
        "activity.html",
        {**context, "entries": page["items"], "older": older, "newest": _href(here, limit=limit), "stream": STREAM},
    )


@router.get("/activity")
async def everyone(request: Request, visit: VisitDep) -> Response:
    """What happened on the platform, newest first."""
    return await _feed(request, visit, "/api/v1/activity", "everyone")


@router.get("/activity/mine")
async def mine(request: Request, visit: VisitDep) -> Response:
    """What happened to the visitor, their installations and their cats."""
    if not visit.signed_in:
        return visit.to_sign_in()
    return await _feed(request, visit, "/api/v1/activity/me", "mine")
