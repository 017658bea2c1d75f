"""The states of an installation and the only moves between them."""

from __future__ import annotations

from cathouse.platform.errors import Conflict

PENDING = "pending"
PROVISIONING = "provisioning"
ACTIVE = "active"
FAILED = "failed"
SUSPENDED = "suspended"
PERMISSIONS_PENDING = "permissions_pending"
CREDENTIALS_INVALID = "credentials_invalid"
UNINSTALLING = "uninstalling"
UNINSTALLED = "uninstalled"

# Running: the cat has been provisioned and the installation exists for it.
RUNNING = frozenset({ACTIVE, PERMISSIONS_PENDING, CREDENTIALS_INVALID})

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PROVISIONING, ACTIVE, FAILED, UNINSTALLING}),
    PROVISIONING: frozenset({ACTIVE, FAILED, UNINSTALLING}),
    FAILED: frozenset({PROVISIONING, UNINSTALLING}),
    ACTIVE: frozenset({SUSPENDED, PERMISSIONS_PENDING, CREDENTIALS_INVALID, UNINSTALLING}),
    PERMISSIONS_PENDING: frozenset({ACTIVE, SUSPENDED, CREDENTIALS_INVALID, UNINSTALLING}),
    CREDENTIALS_INVALID: frozenset({ACTIVE, PERMISSIONS_PENDING, SUSPENDED, UNINSTALLING}),
    SUSPENDED: frozenset({ACTIVE, PERMISSIONS_PENDING, UNINSTALLING}),
    UNINSTALLING: frozenset({UNINSTALLED}),
    UNINSTALLED: frozenset(),
}


class IllegalTransition(Conflict):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(
            f"An installation that is {current.replace('_', ' ')} cannot become {target.replace('_', ' ')}.",
            current_status=current,
        )


def check(current: str, target: str) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
