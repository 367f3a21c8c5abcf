"""Alerts raised for city managers, and the audit log of their actions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field
from shared.enums import AlertKind, AlertSeverity


class OpsAlert(SQLModel, table=True):
    """An alert stays open until its condition clears (``resolved_at``); acknowledging it
    records who has seen it. ``dedupe_key`` keeps one open alert per condition."""

    __tablename__ = "ops_alerts"
    __table_args__ = (
        Index(
            "uq_ops_alerts_open_key",
            "dedupe_key",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_ops_alerts_city_open", "city_id", postgresql_where=text("resolved_at IS NULL")),
    )

    alert_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    city_id: str = Field(max_length=10)
    store_id: str | None = Field(default=None, max_length=20)
    kind: AlertKind = enum_field(max_length=40)
    severity: AlertSeverity = enum_field(max_length=10)
    subject: str | None = Field(default=None, max_length=80)
    message: str = Field(max_length=300)
    dedupe_key: str = Field(max_length=200)
    raised_at: Timestamp = tz_field(nullable=False)
    acknowledged_at: Timestamp = tz_field()
    acknowledged_by: uuid.UUID | None = None
    resolved_at: Timestamp = tz_field()


class AuditLogEntry(SQLModel, table=True):
    """Append-only: one row per manager action, written in the action's transaction."""

    __tablename__ = "ops_audit_log"

    entry_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    at: Timestamp = tz_field(nullable=False)
    actor_id: uuid.UUID
    city_id: str = Field(max_length=10, index=True)
    action: str = Field(max_length=40)  # e.g. "store.pause", "order.reassign"
    target: str = Field(max_length=80)  # the store, order or sale acted on
    reason: str | None = Field(default=None, max_length=200)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB))
