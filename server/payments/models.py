"""Payments and refunds (money in paise)."""

from __future__ import annotations

import uuid

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from server.kit.columns import Timestamp, tz_field


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_order", "order_id"),)

    store_id: str = Field(primary_key=True, max_length=20)
    payment_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID
    amount_paise: int = Field(ge=0)
    currency: str = Field(default="INR", max_length=3)
    status: str = Field(default="PENDING", max_length=20)  # PENDING, SUCCEEDED, FAILED
    provider_ref: str | None = Field(default=None, max_length=80)
    failure_reason: str | None = Field(default=None, max_length=200)
    created_at: Timestamp = tz_field(server_now=True)
    updated_at: Timestamp = tz_field(server_now=True)


class Refund(SQLModel, table=True):
    """Money owed back: a cancelled paid order, or a line that could not be filled."""

    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_order", "order_id"),
        Index("ix_refunds_pending", "next_attempt_at", postgresql_where=text("status = 'PENDING'")),
    )

    store_id: str = Field(primary_key=True, max_length=20)
    refund_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID
    sku_id: str | None = Field(default=None, max_length=50)
    amount_paise: int = Field(ge=0)
    reason: str = Field(max_length=200)
    # PENDING until the provider pays it out (SUCCEEDED) or refuses it for good (FAILED);
    # the refund id is the provider's idempotency key, so a retry never pays twice. HELD:
    # a short line waiting on the customer's substitution answer (not paid out until it
    # is PENDING again, shrunk by a substitute); VOID: held when the order was cancelled
    # and refunded whole (server/picking/consent.py)
    status: str = Field(default="PENDING", max_length=20)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: Timestamp = tz_field()
    provider_ref: str | None = Field(default=None, max_length=80)
    failure_reason: str | None = Field(default=None, max_length=200)
    created_at: Timestamp = tz_field(server_now=True)
    updated_at: Timestamp = tz_field()
