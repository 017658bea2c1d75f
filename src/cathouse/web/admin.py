"""The admin pages: the review queue, a cat's moderation and its reviews, and finding users.

Admins only: anyone else signed in gets a 403 page, and a visitor goes to sign in. Every action
is the moderation API's own (approve, reject, suspend, delist, reinstate; hide and restore a
review; set roles, disable and enable an account), so the API's rules and words apply; a reason
it requires and was not given comes back next to the reason field.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response

from cathouse.web.api import ApiProblem
from cathouse.web.console import by_field
from cathouse.web.session import CheckedForm, Visit, VisitDep, form_text, local_path, role_refusal

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
# What an admin may do to a cat in each state, and whether the API wants a reason for it.
ACTIONS = {
    "pending_review": ("approve", "reject"),
    "published": ("suspend", "delist"),
    "suspended": ("reinstate", "delist"),
    "delisted": ("reinstate",),
}
WITH_REASON = ("reject", "suspend", "delist")
DONE = {
    "approve": "The cat is approved and public.",
    "reject": "The cat is sent back to its publisher with your reason.",
    "suspend": "The cat is suspended.",
    "delist": "The cat is delisted.",
    "reinstate": "The cat is public again.",
    "hide": "The review is hidden.",
    "restore": "The review is shown again.",
    "roles": "The roles are saved.",
    "disable": "The account is disabled.",
    "enable": "The account is enabled.",
}
USER_FILTERS = ("q", "role", "status", "cursor")


async def _refusal(visit: Visit) -> Response | None:
    return await role_refusal(visit, "admin")


@router.get("/admin")
async def queue(visit: VisitDep, cursor: str | None = None, done: str | None = None) -> Response:
    refused = await _refusal(visit)
    if refused:
        return refused
    try:
        page = await visit.api.get("/api/v1/cats/review-queue", {"cursor": cursor, "limit": PAGE_SIZE})
    except ApiProblem as problem:
        return visit.refused(problem)
    return visit.render("admin/index.html", {"page": page, "done": DONE.get(done or "")})


@router.get("/admin/find-cat")
async def find_cat(visit: VisitDep, slug: str = "") -> Response:
    """The search box's answer: the cat's moderation page (its slug is what the admin typed)."""
    return visit.redirect(f"/admin/cats/{quote(slug.strip().lower())}" if slug.strip() else "/admin")


async def _cat_page(visit: Visit, slug: str, status: int = 200, **context: Any) -> Response:
    try:
        cat, reviews = await asyncio.gather(
            visit.api.get(f"/api/v1/cats/{slug}"), visit.api.get(f"/api/v1/cats/{slug}/reviews", {"limit": 50})
        )
    except ApiProblem as problem:
        return visit.refused(problem)
    actions = ACTIONS.get(cat["status"], ())
    page = {"cat": cat, "reviews": reviews, "actions": actions, "with_reason": WITH_REASON, **context}
    return visit.render("admin/cat.html", page, status=status)


@router.get("/admin/cats/{slug}")
async def cat_page(visit: VisitDep, slug: str, done: str | None = None) -> Response:
    refused = await _refusal(visit)
    if refused:
        return refused
    return await _cat_page(visit, slug, done=DONE.get(done or ""))


@router.post("/admin/cats/{slug}/moderate")
async def moderate(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    """One form, one reason, a button per action the cat's state allows."""
    refused = await _refusal(visit)
    if refused:
        return refused
    action, reason = form_text(form, "action"), form_text(form, "reason")
    if action not in DONE or action in ("hide", "restore", "roles", "disable", "enable"):
        return visit.refused(ApiProblem(400, "Unknown action", "Choose one of the page's buttons."))
    body = {"reason": reason} if action in WITH_REASON else None
    try:
        await visit.api.post(f"/api/v1/cats/{slug}/{action}", body)
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            return visit.refused(problem)
        return await _cat_page(visit, slug, problem.status, problem=by_field(problem), reason=reason)
    # Approving from the queue goes back to the queue, with the next cat waiting.
    back = local_path(form_text(form, "back"), f"/admin/cats/{quote(slug)}")
    return visit.redirect(f"{back}?done={action}")


@router.post("/admin/cats/{slug}/reviews/{review_id}/{action}")
async def moderate_review(visit: VisitDep, form: CheckedForm, slug: str, review_id: str, action: str) -> Response:
    refused = await _refusal(visit)
    if refused:
        return refused
    if action not in ("hide", "restore"):
        return visit.refused(ApiProblem(404, "Not found", "There is no such action."))
    reason = form_text(form, "reason")
    body = {"reason": reason} if action == "hide" else None
    try:
        await visit.api.post(f"/api/v1/cats/{slug}/reviews/{quote(review_id)}/{action}", body)
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            return visit.refused(problem)
        context = {"review_problem": by_field(problem), "review_id": review_id, "reason": reason}
        return await _cat_page(visit, slug, problem.status, **context)
    return visit.redirect(f"/admin/cats/{quote(slug)}?done={action}#review-{review_id}")


@router.get("/admin/users")
async def users(request: Request, visit: VisitDep, done: str | None = None) -> Response:
    refused = await _refusal(visit)
    if refused:
        return refused
    filters = {name: request.query_params.get(name) or "" for name in USER_FILTERS}
    try:
        page = await visit.api.get("/api/v1/users", {**filters, "limit": PAGE_SIZE})
    except ApiProblem as problem:
        if problem.status == 401:
            return visit.to_sign_in()
        return visit.render("admin/users.html", {"filters": filters, "problem": by_field(problem)}, problem.status)
    here = "/admin/users?" + urlencode({k: v for k, v in filters.items() if v and k != "cursor"})
    context = {"filters": filters, "page": page, "here": here, "done": DONE.get(done or "")}
    return visit.render("admin/users.html", context)


@router.post("/admin/users/{user_id}/{action}")
async def change_user(visit: VisitDep, form: CheckedForm, user_id: str, action: str) -> Response:
    refused = await _refusal(visit)
    if refused:
        return refused
    back = local_path(form_text(form, "back"), "/admin/users")
    try:
        if action == "roles":
            roles = [role for role in ("developer", "admin") if form.get(role)]
            await visit.api.put(f"/api/v1/users/{quote(user_id)}/roles", {"roles": roles})
        elif action in ("disable", "enable"):
            await visit.api.post(f"/api/v1/users/{quote(user_id)}/{action}")
        else:
            raise ApiProblem(404, "Not found", "There is no such action.")
    except ApiProblem as problem:
        return visit.refused(problem)
    joiner = "&" if "?" in back else "?"
    return visit.redirect(f"{back}{joiner}done={action}#user-{user_id}")
