"""The states of an installation and the only moves between them."""

from __future__ import annotations

from cathouse.installation.models import InstallationStatus as S
from cathouse.platform.errors import Conflict

# Running: the cat has been provisioned and the installation exists for it.
RUNNING = frozenset({S.ACTIVE, S.PERMISSIONS_PENDING, S.CREDENTIALS_INVALID})

TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.ACTIVE, S.FAILED, S.UNINSTALLING}),
    # Granted at the provider: provisioning goes on as for any install.
    S.AUTHORIZING: frozenset({S.PENDING, S.UNINSTALLING}),
    S.PROVISIONING: frozenset({S.ACTIVE, S.FAILED, S.UNINSTALLING}),
    S.FAILED: frozenset({S.PROVISIONING, S.UNINSTALLING}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.PERMISSIONS_PENDING, S.CREDENTIALS_INVALID, S.UNINSTALLING}),
    S.PERMISSIONS_PENDING: frozenset({S.ACTIVE, S.SUSPENDED, S.CREDENTIALS_INVALID, S.UNINSTALLING}),
    S.CREDENTIALS_INVALID: frozenset({S.ACTIVE, S.PERMISSIONS_PENDING, S.SUSPENDED, S.UNINSTALLING}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.PERMISSIONS_PENDING, S.UNINSTALLING}),
    S.UNINSTALLING: frozenset({S.UNINSTALLED}),
    S.UNINSTALLED: frozenset(),
}


class IllegalTransition(Conflict):
    """The installation's status does not allow this (`current_status` names it)."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(
            f"An installation that is {current.replace('_', ' ')} cannot become {target.replace('_', ' ')}.",
            current_status=current,
        )


def check(current: S, target: S) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
