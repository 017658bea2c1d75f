"""The developer console: a publisher's cats in every state, their listings, versions and images.

Everything goes through the catalog's API as the signed-in developer, so the API decides what
they may do and says why not. A version is written as YAML and checked by the manifest
validator before it is added; its problems come back on the lines they concern
(:mod:`cathouse.web.versions`). The webhook signing secrets are fetched only when the developer
presses the button, and the page that shows them is never cached.

Only developers (and admins) publish. A signed-in person without the role is told how to get
it: an admin grants it. Roles are read again from the API before saying no, since one may have
been granted after the person signed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Response
from starlette.datastructures import UploadFile

from cathouse.web import versions
from cathouse.web.api import ApiProblem
from cathouse.web.session import CheckedForm, Visit, VisitDep, form_text, role_refusal

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
# What the developer can edit of a listing; the slug only when creating (it never changes).
LISTING = ("name", "summary", "description", "category", "tags", "homepage", "support_email", "support_url")
OPTIONAL = ("homepage", "support_email", "support_url")
# A version's text past this is not a version anyone wrote by hand; the validator takes 1 MiB.
MAX_SPEC_CHARS = 256 * 1024
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# Said once after a change (``?done=``), so a reload does not send the form again.
DONE = {
    "created": "The cat is created as a draft. Add a version, then submit it for review.",
    "saved": "The listing is saved.",
    "version": "The version is added.",
    "published": "The version is published.",
    "icon": "The icon is uploaded.",
    "screenshot": "The screenshot is added.",
    "removed": "The image is removed.",
    "submitted": "The cat is submitted for review. An admin will approve it or tell you what to change.",
}
# A cat in these states may be submitted for review.
SUBMITTABLE = ("draft", "rejected")


def by_field(problem: ApiProblem) -> ApiProblem:
    """``problem`` with each field named by its form field (``tags.2`` is the tags field's problem)."""
    problem.fields = {name.split(".")[0]: message for name, message in reversed(problem.fields.items())}
    return problem


def _listing(form: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """What was typed (to show again) and the API body it makes; an emptied optional field clears it."""
    values = {name: form_text(form, name) for name in (*LISTING, "slug")}
    body: dict[str, Any] = {name: values[name] for name in LISTING}
    body["tags"] = [tag for tag in values["tags"].replace(",", " ").split() if tag]
    for name in OPTIONAL:
        body[name] = values[name] or None
    return values, body


def _values(cat: dict[str, Any]) -> dict[str, str]:
    """A cat's listing as the form shows it."""
    values = {name: cat.get(name) or "" for name in (*LISTING, "slug")}
    values["tags"] = ", ".join(cat.get("tags") or ())
    return values


@router.get("/console")
async def console(visit: VisitDep, cursor: str | None = None) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    try:
        page = await visit.api.get("/api/v1/cats/mine", {"cursor": cursor, "limit": PAGE_SIZE})
    except ApiProblem as problem:
        return visit.refused(problem)
    return visit.render("console/index.html", {"page": page, "cursor": cursor})


@router.get("/console/new")
async def new_cat_page(visit: VisitDep) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    return await _new_cat(visit, {})


async def _new_cat(visit: Visit, values: dict[str, str], problem: ApiProblem | None = None) -> Response:
    try:
        categories = await visit.api.get("/api/v1/cats/categories")
    except ApiProblem as failed:
        return visit.refused(failed)
    context = {"values": values, "categories": categories, "problem": problem}
    return visit.render("console/new.html", context, status=problem.status if problem else 200)


@router.post("/console/new")
async def create_cat(visit: VisitDep, form: CheckedForm) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    values, body = _listing(form)
    body = {key: value for key, value in body.items() if value is not None}
    try:
        cat = await visit.api.post("/api/v1/cats", {**body, "slug": values["slug"]})
    except ApiProblem as problem:
        if problem.status == 409:  # the one conflict of a new cat: its slug is taken
            problem.fields = {"slug": problem.detail}
        return await _new_cat(visit, values, by_field(problem))
    return visit.redirect(f"/console/cats/{quote(cat['slug'])}?done=created")


async def _cat_page(visit: Visit, slug: str, status: int = 200, **context: Any) -> Response:
    """One cat's console page; ``context`` adds what a form sent back (its values, its problem)."""
    api = visit.api
    try:
        cat, listed, categories = await asyncio.gather(
            api.get(f"/api/v1/cats/{slug}"),
            api.get(f"/api/v1/cats/{slug}/versions"),
            api.get("/api/v1/cats/categories"),
        )
    except ApiProblem as problem:
        return visit.refused(problem)
    deliveries = None
    # The delivery log is the installation service's: the page stands without it.
    with contextlib.suppress(ApiProblem):
        deliveries = await api.get("/api/v1/installations/deliveries", {"cat": slug, "limit": 20})
    page = {
        "cat": cat,
        "versions": listed,
        "categories": categories,
        "deliveries": deliveries,
        "values": _values(cat),
        "submittable": cat["status"] in SUBMITTABLE,
        **context,
    }
    return visit.render("console/cat.html", page, status=status)


@router.get("/console/cats/{slug}")
async def cat_page(visit: VisitDep, slug: str, done: str | None = None) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    return await _cat_page(visit, slug, done=DONE.get(done or ""))


@router.post("/console/cats/{slug}")
async def save_listing(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    values, body = _listing(form)
    try:
        await visit.api.patch(f"/api/v1/cats/{slug}", body)
    except ApiProblem as problem:
        if problem.status != 422:
            return visit.refused(problem)
        return await _cat_page(visit, slug, problem.status, values=values, problem=by_field(problem))
    return visit.redirect(f"/console/cats/{quote(slug)}?done=saved")


async def _upload(visit: Visit, form: Any, slug: str, field: str) -> Response:
    """The file of ``field`` sent to the cat's icon or screenshots; its refusal shown by the field."""
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    upload, data = form.get(field), b""
    if isinstance(upload, UploadFile):
        try:
            data = await upload.read(MAX_IMAGE_BYTES + 1)
        finally:
            await upload.close()  # its spooled file, now rather than when collected
    method, path = ("PUT", "icon") if field == "icon" else ("POST", "screenshots")
    try:
        if not data:
            raise ApiProblem(422, "No image", "Choose an image file (PNG, JPEG or WebP) first.")
        if len(data) > MAX_IMAGE_BYTES:
            raise ApiProblem(413, "Too large", f"The image is larger than {MAX_IMAGE_BYTES // 1024 // 1024} MiB.")
        await visit.api.call(
            method, f"/api/v1/cats/{slug}/{path}", content=data, headers={"Content-Type": "application/octet-stream"}
        )
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            return visit.refused(problem)
        problem.fields = {field: problem.detail}
        return await _cat_page(visit, slug, problem.status, image_problem=problem)
    return visit.redirect(f"/console/cats/{quote(slug)}?done={field}")


@router.post("/console/cats/{slug}/icon")
async def upload_icon(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    return await _upload(visit, form, slug, "icon")


@router.post("/console/cats/{slug}/screenshots")
async def upload_screenshot(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    return await _upload(visit, form, slug, "screenshot")


async def _act(visit: Visit, slug: str, path: str, done: str, method: str = "POST") -> Response:
    """A call to the cat's ``path`` with nothing to send (submit, publish a version, remove an image);
    its refusal shown at the review section."""
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    try:
        await visit.api.call(method, f"/api/v1/cats/{slug}/{path}")
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            return visit.refused(problem)
        return await _cat_page(visit, slug, problem.status, submit_problem=problem)
    return visit.redirect(f"/console/cats/{quote(slug)}?done={done}")


@router.post("/console/cats/{slug}/icon/remove")
async def remove_icon(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    return await _act(visit, slug, "icon", "removed", "DELETE")


@router.post("/console/cats/{slug}/screenshots/{asset_id}/remove")
async def remove_screenshot(visit: VisitDep, form: CheckedForm, slug: str, asset_id: uuid.UUID) -> Response:
    return await _act(visit, slug, f"screenshots/{asset_id}", "removed", "DELETE")


@router.post("/console/cats/{slug}/submit")
async def submit(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    return await _act(visit, slug, "submit", "submitted")


@router.post("/console/cats/{slug}/webhook-secrets")
async def webhook_secrets(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    """The signing secrets, shown because the developer asked; the answer is never stored by a cache."""
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    try:
        secrets = await visit.api.get(f"/api/v1/cats/{slug}/webhook-secrets")
    except ApiProblem as problem:
        return visit.refused(problem)
    page = await _cat_page(visit, slug, secrets=secrets)
    page.headers["Cache-Control"] = "no-store"
    return page


@router.post("/console/cats/{slug}/versions/{version}/publish")
async def publish_version(visit: VisitDep, form: CheckedForm, slug: str, version: str) -> Response:
    return await _act(visit, slug, f"versions/{quote(version)}/publish", "published")


@router.get("/console/cats/{slug}/versions/new")
async def new_version_page(visit: VisitDep, slug: str) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    try:
        cat, listed = await asyncio.gather(
            visit.api.get(f"/api/v1/cats/{slug}"), visit.api.get(f"/api/v1/cats/{slug}/versions")
        )
    except ApiProblem as problem:
        return visit.refused(problem)
    return visit.render("console/version.html", {"cat": cat, "spec": versions.as_yaml(listed[0] if listed else None)})


@router.post("/console/cats/{slug}/versions/new")
async def add_version(visit: VisitDep, form: CheckedForm, slug: str) -> Response:
    refused = await role_refusal(visit, "developer", "console/no_role.html")
    if refused:
        return refused
    raw = form.get("spec")
    spec = raw if isinstance(raw, str) else ""  # as typed: leading spaces are YAML's indentation
    try:
        cat = await visit.api.get(f"/api/v1/cats/{slug}")
    except ApiProblem as problem:
        return visit.refused(problem)
    context: dict[str, Any] = {"cat": cat, "spec": spec}
    if len(spec) > MAX_SPEC_CHARS:
        context["problem"] = ApiProblem(413, "Too long", f"A version is at most {MAX_SPEC_CHARS // 1024} KiB of YAML.")
        return visit.render("console/version.html", context, status=413)
    try:
        manifest, _ = versions.manifest(cat, spec)
        report = await visit.api.call(
            "POST", "/api/v1/cats/validate", content=manifest.encode(), headers={"Content-Type": "application/yaml"}
        )
        found = versions.placed(spec, report["problems"])
        if not report["valid"] and found:
            return _version_problems(visit, context, found)
        await visit.api.post(f"/api/v1/cats/{slug}/versions", versions.spec(spec))
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            return visit.refused(problem)
        if problem.status == 409:  # the version number exists already
            problem.fields = {"version": problem.detail}
        found = versions.placed(spec, [{"loc": f"versions.0.{k}", "message": v} for k, v in problem.fields.items()])
        if found:
            return _version_problems(visit, context, found, problem.status)
        return visit.render("console/version.html", {**context, "problem": problem}, status=problem.status)
    return visit.redirect(f"/console/cats/{quote(slug)}?done=version")


def _version_problems(
    visit: Visit, context: dict[str, Any], found: list[versions.LineProblem], status: int = 422
) -> Response:
    """The version's text, numbered, each problem under the line it concerns."""
    lines = context["spec"].replace("\r\n", "\n").split("\n")
    under: dict[int, list[versions.LineProblem]] = {}
    for problem in found:
        under.setdefault(min(problem.line, len(lines)), []).append(problem)
    return visit.render("console/version.html", {**context, "lines": lines, "under": under, "found": found}, status)
