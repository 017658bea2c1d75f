"""Who may do what: every route of every service, called as each of five principals, on real data.

The matrix is the table of docs/authorization.md: the test reads it from there, so the page
cannot drift from what the services do. Every operation of every service's OpenAPI
must have a row (and every row an operation), and every cell is checked: an allowed call answers
2xx, a refused one the status the cell names, as problem+json. A "with reason" cell is called
once without its reason (422 naming the field) and once with it.

Each route is called on data of its own where a call changes something: refused principals go
first (they must leave it as it was), and each further allowed principal gets new data.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_service_app
from tests.authorization.matrix import PRINCIPALS, Row
from tests.authorization.recipes import RECIPES, Call, Recipe
from tests.authorization.world import Cast, FakeCat, World


async def published_operations(settings: Settings) -> dict[str, set[tuple[str, str]]]:
    """Each service's operations, as its own /api/v1/openapi.json publishes them."""
    found: dict[str, set[tuple[str, str]]] = {}
    for name in SERVICES:
        transport = httpx.ASGITransport(app=create_service_app(name, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/api/v1/openapi.json")
        assert response.status_code == 200, response.text
        paths: dict[str, dict[str, Any]] = response.json()["paths"]
        found[name] = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    return found


async def test_the_matrix_has_a_row_for_every_operation_of_every_service(
    matrix: dict[tuple[str, str], Row], settings: Settings
) -> None:
    operations = await published_operations(settings)
    missing = sorted(f"{s}: {m} {p}" for s, ops in operations.items() for m, p in ops if (m, p) not in matrix)
    assert not missing, f"routes without a row in docs/authorization.md: {missing}"
    served = {op for ops in operations.values() for op in ops}
    assert not sorted(set(matrix) - served), "matrix rows that no service serves"
    for service, ops in operations.items():
        wrong = sorted(f"{m} {p}" for m, p in ops if matrix[(m, p)].service not in (service, "every"))
        assert not wrong, f"rows filed under another service than {service}'s: {wrong}"
    assert set(RECIPES) == set(matrix), "every row needs a way to call it (tests/authorization/recipes.py)"


async def test_every_route_answers_each_principal_as_the_matrix_says(
    matrix: dict[tuple[str, str], Row], api: httpx.AsyncClient, engine: AsyncEngine, cast: Cast, fake_cat: FakeCat
) -> None:
    shared = World(api, engine, cast, fake_cat)
    wrong: list[str] = []
    calls = 0
    for (method, path), row in sorted(matrix.items(), key=lambda item: (item[1].service, item[0][1], item[0][0])):
        recipe = RECIPES[(method, path)]

        def new_world(recipe: Recipe = recipe) -> World:
            if not recipe.fresh:
                return shared
            return World(api, engine, cast, fake_cat, fresh_people=recipe.fresh_people)

        world = new_world()
        # Refusals first, on the data the allowed calls then change.
        order = sorted(PRINCIPALS, key=lambda p: row.cells[p].allowed)
        allowed_before = False
        for principal in order:
            cell = row.cells[principal]
            if cell.allowed and allowed_before and recipe.fresh:
                world = new_world()
            allowed_before = allowed_before or cell.allowed
            call = await recipe.make(world, method, path)
            headers = {**call.headers, **await world.headers(principal)}

            async def send(call: Call, headers: dict[str, str] = headers) -> httpx.Response:
                return await api.request(
                    call.method, call.url, json=call.json, params=call.params, content=call.content, headers=headers
                )

            where = f"{method} {path} as {principal}"
            if cell.reason:
                bare = await send(call.without_reason())
                calls += 1
                if bare.status_code != 422 or "reason" not in bare.text:
                    wrong.append(f"{where} without a reason: {bare.status_code} {bare.text[:200]}, not 422")
            answer = await send(call)
            calls += 1
            # A redirect is a route's way of succeeding too (to an OAuth provider).
            if cell.allowed and not (answer.is_success or answer.is_redirect):
                wrong.append(f"{where}: {answer.status_code} {answer.text[:200]}, not 2xx")
            elif not cell.allowed and answer.status_code != cell.status:
                wrong.append(f"{where}: {answer.status_code} {answer.text[:200]}, not {cell.status}")
            elif not cell.allowed and not answer.headers["content-type"].startswith("application/problem+json"):
                wrong.append(f"{where}: a {answer.status_code} that is not problem+json")
    assert not wrong, f"{len(wrong)} of {calls} calls disagree with docs/authorization.md:\n" + "\n".join(wrong)


async def test_an_admin_suspension_reaches_the_owner_with_its_reason(
    api: httpx.AsyncClient, engine: AsyncEngine, cast: Cast, fake_cat: FakeCat
) -> None:
    world = World(api, engine, cast, fake_cat)
    installation_id = await world.installation()
    reason = "Calls look like credential stuffing."
    suspended = await world.as_(
        "admin", "POST", f"/api/v1/installations/{installation_id}/suspend", json={"reason": reason}
    )
    assert (suspended["status"], suspended["status_reason"]) == ("suspended", reason)
    for _ in range(400):  # the activity consumer applies the event after the commit
        feed = await world.as_("owner", "GET", "/api/v1/activity/me")
        told = [
            e
            for e in feed["items"]
            if e["type"] == "installation.status_changed"
            and e["data"].get("installation_id") == installation_id
            and e["data"]["to"] == "suspended"
        ]
        if told:
            break
        await asyncio.sleep(0.025)
    assert told, "the owner's feed never said the installation was suspended"
    assert told[0]["data"]["reason"] == reason
    assert told[0]["data"]["by_admin"] is True
    # Nobody else is told why.
    other = await world.as_("other", "GET", "/api/v1/activity/me")
    assert reason not in str(other)


async def test_what_an_admin_suspended_only_an_admin_resumes(
    api: httpx.AsyncClient, engine: AsyncEngine, cast: Cast, fake_cat: FakeCat
) -> None:
    world = World(api, engine, cast, fake_cat)
    installation_id = await world.installation()
    url = f"/api/v1/installations/{installation_id}"
    await world.as_("admin", "POST", f"{url}/suspend", json={"reason": "Calls look automated."})

    refused = await api.post(f"{url}/resume", headers=await world.headers("owner"))
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "only an admin can resume it" in refused.json()["detail"]
    mine = await world.as_("owner", "GET", url)
    assert (mine["status"], mine["suspended_by_moderator"]) == ("suspended", True)

    no_reason = await api.post(f"{url}/resume", headers=await world.headers("admin"))
    assert no_reason.status_code == 422, no_reason.text
    assert await world.as_("owner", "GET", url) == mine  # nothing changed

    resumed = await world.as_("admin", "POST", f"{url}/resume", json={"reason": "Cleared after review."})
    assert (resumed["status"], resumed["suspended_by_moderator"]) == ("active", False)
    # The owner's own pause is theirs again: they resume it, an admin cannot.
    await world.as_("owner", "POST", f"{url}/suspend", json={"reason": "Holiday"})
    not_theirs = await api.post(f"{url}/resume", headers=await world.headers("admin"), json={"reason": "Trying"})
    assert not_theirs.status_code == 404, not_theirs.text
    assert (await world.as_("owner", "POST", f"{url}/resume"))["status"] == "active"
