"""What the installation service publishes (payloads: ``schema_version`` 1).

Every payload has ``installation_id``, ``user_id``, ``cat_id`` and ``version``; transitions add
``from``, ``to`` and ``reason``. Secret values never appear in any of them.
"""

CREATED = "installation.created"  # {name, permissions}
STATUS_CHANGED = "installation.status_changed"  # {from, to, reason, by, [by_admin]}
PERMISSIONS_CHANGED = "installation.permissions_changed"  # {granted, revoked}
UPGRADED = "installation.upgraded"  # {from_version}
UPDATED = "installation.updated"  # {fields}
SECRETS_REPLACED = "installation.secrets_replaced"  # {fields}
