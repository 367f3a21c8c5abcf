"""The audit log: every manager action writes one row in the same transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.ops.models import AuditLogEntry


async def record_action(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID,
    city_id: str,
    action: str,
    target: str,
    now: datetime,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLogEntry(
            at=now,
            actor_id=actor_id,
            city_id=city_id,
            action=action,
            target=target,
            reason=reason,
            details=details or {},
        )
    )
    await session.flush()


async def list_actions(
    session: AsyncSession, *, city_id: str, limit: int = 100, before: int | None = None
) -> list[AuditLogEntry]:
    query = select(AuditLogEntry).where(AuditLogEntry.city_id == city_id)
    if before is not None:
        query = query.where(col(AuditLogEntry.entry_id) < before)
    query = query.order_by(col(AuditLogEntry.entry_id).desc()).limit(limit)
    return list((await session.exec(query)).all())
