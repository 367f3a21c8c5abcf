"""The transactional outbox: events written with the change they describe."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Identity, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, tz_field


class OutboxEvent(SQLModel, table=True):
    """Keyed (store_id, event_id): an event is written on its store's shard, so the order
    transaction that writes it stays on one shard (Citus)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "event_id", postgresql_where=text("published_at IS NULL")),
    )

    store_id: str = Field(primary_key=True, max_length=20)
    event_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    topic: str = Field(max_length=60)  # e.g. "order.status", "inventory.low_stock"
    aggregate_id: str | None = Field(default=None, max_length=80)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB))
    created_at: Timestamp = tz_field(server_now=True)
    published_at: Timestamp = tz_field()
