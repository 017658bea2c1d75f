"""The catalogue lists every event the platform publishes, and real payloads match it."""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import text

from cathouse.activity import projection
from cathouse.activity.catalogue import CATALOGUE
from cathouse.auth import events as auth_events
from cathouse.catalog import events as catalog_events
from cathouse.installation import events as installation_events
from cathouse.proxy import gateway
from tests.activity.conftest import Platform, install
from tests.activity.test_router import review
from tests.installation.conftest import People, publish, wait_for_status


def event_names(module: ModuleType) -> set[str]:
    return {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and "." in v}


def test_every_event_the_services_name_is_in_the_catalogue_and_projected() -> None:
    published = (
        event_names(auth_events)
        | event_names(catalog_events)
        | event_names(installation_events)
        | {gateway.CREDENTIALS_REJECTED, gateway.CREDENTIALS_ACCEPTED}
    )
    assert published == set(CATALOGUE)
    assert set(projection._PROJECTIONS) == set(CATALOGUE)


async def test_real_payloads_carry_the_fields_the_catalogue_lists(live: Platform, people: People) -> None:
    api = live.api
    slug = await publish(api, people)
    installation = await install(api, people, slug)
    await wait_for_status(api, people.owner, installation, "active")
    review_id = await review(api, slug, people.owner.headers, 3)
    await api.post(f"/api/v1/cats/{slug}/reviews/{review_id}/hide", json={"reason": "x"}, headers=people.admin.headers)
    await api.post(
        f"/api/v1/installations/{installation}/suspend", json={"reason": "pause"}, headers=people.owner.headers
    )
    await live.settle()

    async with live.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT event_type, schema_version, payload FROM events.outbox"))).all()
    assert len({r.event_type for r in rows}) >= 6
    for event_type, version, payload in rows:
        spec = CATALOGUE[event_type]
        assert version == spec.schema_version
        always = {f for f in spec.fields if not f.startswith("[")}
        sometimes = {f.strip("[]") for f in spec.fields if f.startswith("[")}
        assert always <= set(payload) <= always | sometimes, event_type
