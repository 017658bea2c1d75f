from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from cathouse.catalog.models import ReviewStatus
from cathouse.platform.schemas import NonBlankLine, NonBlankProse, NotNull, Prose, Strict

Stars = Annotated[int, Field(ge=1, le=5, description="1 to 5 stars.")]
Title = Annotated[str, StringConstraints(min_length=1, max_length=120), NonBlankLine]
Body = Annotated[str, StringConstraints(max_length=5000), Prose]


class ReviewIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"rating": 5, "title": "Does what it says", "body": "Set up in ten minutes; never lost a point."}
            ]
        }
    )

    rating: Stars
    title: Title
    body: Body = ""


class ReviewUpdate(Strict):
    """Only what is sent changes; a field sent as null is refused (leave it out to keep it)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"rating": 4, "title": "Good, one rough edge"}]})

    rating: Annotated[Stars | None, NotNull()] = None
    title: Annotated[Title | None, NotNull()] = None
    body: Annotated[Body | None, NotNull()] = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ReviewUpdate:
        for field in self.model_fields_set:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class ReplyIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"body": "Thank you! Version 1.3 fixes the rough edge."}]}
    )

    body: Annotated[str, StringConstraints(min_length=1, max_length=5000), NonBlankProse]


class Reply(BaseModel):
    body: str
    replied_at: datetime


class Author(BaseModel):
    id: uuid.UUID
    display_name: str


class ReviewOut(BaseModel):
    id: uuid.UUID
    author: Author
    rating: int
    title: str
    body: str
    verified: bool = Field(description="The author has installed the cat.")
    status: Literal[ReviewStatus.VISIBLE, ReviewStatus.HIDDEN]
    hidden_reason: str | None = Field(default=None, description="Shown to admins only.")
    reply: Reply | None = Field(description="The publisher's public answer.")
    created_at: datetime
    updated_at: datetime


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    next_cursor: str | None
