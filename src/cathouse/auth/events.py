"""What the auth service publishes (payloads: ``schema_version`` 1)."""

USER_REGISTERED = "user.registered"  # {user_id, display_name}
USER_UPDATED = "user.updated"  # {user_id, fields}
USER_ROLES_CHANGED = "user.roles_changed"  # {user_id, roles, by}
USER_DISABLED = "user.disabled"  # {user_id, by}
USER_ENABLED = "user.enabled"  # {user_id, by}
USER_DELETED = "user.deleted"  # {user_id}
REFRESH_TOKEN_REUSED = "auth.refresh_token_reused"  # noqa: S105 - an event name  {user_id, family_id}
