"""The projection knows every event the contracts list, and what the services really write is
what the contracts' models say, to the byte of JSON."""

from __future__ import annotations

from sqlalchemy import text

from cathouse.activity import projection
from cathouse.contracts.events import EVENTS, parse
from tests.activity.conftest import Platform, install
from tests.activity.test_router import review
from tests.installation.conftest import People, publish, wait_for_status


def test_every_registered_event_is_projected() -> None:
    assert set(projection._PROJECTIONS) == set(EVENTS)


async def test_real_payloads_are_their_models_dumped(live: Platform, people: People) -> None:
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
        rows = (
            await conn.execute(
                text("SELECT aggregate_type, aggregate_id, event_type, schema_version, payload FROM events.outbox")
            )
        ).all()
    assert len({r.event_type for r in rows}) >= 6
    for aggregate_type, aggregate_id, event_type, version, payload in rows:
        parsed = parse(event_type, version, payload)
        assert parsed.payload() == payload, event_type
        assert (parsed.aggregate, parsed.aggregate_id) == (aggregate_type, aggregate_id), event_type
