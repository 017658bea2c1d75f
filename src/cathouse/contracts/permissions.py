"""The grammar of a permission's name, which a cat's version declares (catalog), an owner grants
(installation) and every proxied call is checked against (proxy): ``area:action``, lower case."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints

PERMISSION_PATTERN = r"^[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)+$"
PERMISSION_MAX_LENGTH = 64
PERMISSION = re.compile(PERMISSION_PATTERN)

PermissionName = Annotated[
    str,
    StringConstraints(max_length=PERMISSION_MAX_LENGTH, pattern=PERMISSION_PATTERN),
    Field(examples=["points:write"]),
]
