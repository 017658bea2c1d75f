from sqlalchemy.orm import DeclarativeBase

from cathouse.platform.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("activity")
