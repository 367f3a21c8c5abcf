"""Column helpers shared by every domain's tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, func
from sqlmodel import Field


def tz_field(*, nullable: bool = True, server_now: bool = False, index: bool = False) -> Any:
    """A ``timestamptz`` column. Values come from the server clock; ``now()`` is a fallback."""
    kwargs: dict[str, Any] = {}
    if server_now:
        kwargs["server_default"] = func.now()
    return Field(
        default=None,
        sa_type=DateTime(timezone=True),
        nullable=nullable and not server_now,
        index=index,
        sa_column_kwargs=kwargs,
    )


Timestamp = datetime | None


def enum_field(default: Any = ..., *, max_length: int = 30, index: bool = False) -> Any:
    """A StrEnum stored as VARCHAR: new states need no ``ALTER TYPE`` migration."""
    return Field(
        default=default,
        sa_type=String(max_length),
        index=index,
    )
