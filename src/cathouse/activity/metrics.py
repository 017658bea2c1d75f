"""The activity service's metrics: how far the consumer is behind, what it applied and skipped."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LAG_EVENTS = Gauge(
    "cathouse_activity_lag_events",
    "Events in the outbox not yet relayed, so not yet applied to the activity read model.",
)
LAG_SECONDS = Gauge(
    "cathouse_activity_lag_seconds",
    "How far the read model is behind: the age of the oldest event still waiting, or, when none "
    "waits, how old the last event was when it was applied.",
)
APPLIED = Counter(
    "cathouse_activity_events_applied_total", "Events applied to the activity read model.", ["event_type"]
)
SKIPPED = Counter(
    "cathouse_activity_events_skipped_total",
    "Events the activity consumer did not apply: duplicate (applied before), unknown_type, unknown_version, malformed.",
    ["reason"],
)
STREAMS = Gauge("cathouse_activity_streams", "Live activity streams (Server-Sent Events) connected.")
