"""The outbox: an event is a row written in the same transaction as the change it tells."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam
from sqlmodel.ext.asyncio.session import AsyncSession

_INSERT = text("""
    INSERT INTO outbox (topic, store_id, aggregate_id, payload, created_at)
    VALUES (:topic, :store, :aggregate, :payload, :now)""").bindparams(
    bindparam("payload", type_=JSONB)
)


async def emit(
    session: AsyncSession,
    *,
    topic: str,
    payload: dict[str, Any],
    now: datetime,
    store_id: str | None = None,
    aggregate_id: str | None = None,
) -> None:
    await session.exec(
        _INSERT,
        params={
            "topic": topic,
            "store": store_id,
            "aggregate": aggregate_id,
            "payload": payload,
            "now": now,
        },
    )
