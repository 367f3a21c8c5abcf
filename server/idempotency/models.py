"""Stored answers of requests that carried an ``Idempotency-Key``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, tz_field


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    user_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=100)
    request_hash: str = Field(max_length=64)
    status_code: int | None = None  # None while the first request is still running
    body: Any = Field(default=None, sa_column=Column(JSONB))
    created_at: Timestamp = tz_field(server_now=True, index=True)
