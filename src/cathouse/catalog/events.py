"""What the catalog publishes (payloads: ``schema_version`` 1). Every payload has ``cat_id`` and ``slug``."""

CAT_SUBMITTED = "cat.submitted"  # {publisher_id}
CAT_PUBLISHED = "cat.published"  # {name, category, publisher_id, version}
CAT_REJECTED = "cat.rejected"  # {reason, by}
CAT_UPDATED = "cat.updated"  # {fields}
CAT_VERSION_PUBLISHED = "cat.version_published"  # {version, permissions, current}
CAT_SUSPENDED = "cat.suspended"  # {reason, by}
CAT_REINSTATED = "cat.reinstated"  # {by}
CAT_DELISTED = "cat.delisted"  # {reason, by, orphaned}
CAT_SYNC_FAILED = "cat.sync_failed"  # {problems}: a manifest that no longer validates

REVIEW_CREATED = "review.created"  # {review_id, user_id, rating, verified}
REVIEW_UPDATED = "review.updated"  # {review_id, user_id, rating, previous_rating}
REVIEW_DELETED = "review.deleted"  # {review_id, user_id, rating}
REVIEW_HIDDEN = "review.hidden"  # {review_id, reason, by}
REVIEW_RESTORED = "review.restored"  # {review_id, by}
REVIEW_REPLIED = "review.replied"  # {review_id, by}
