"""Enumerations the server and the apps share (stored as their string values)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    PICKER = "picker"
    RIDER = "rider"
    MANAGER = "manager"
    ADMIN = "admin"


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    PICKING = "PICKING"
    PARTIALLY_FULFILLED = "PARTIALLY_FULFILLED"
    PACKED = "PACKED"
    DISPATCHED = "DISPATCHED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


class ReservationStatus(StrEnum):
    SOFT = "SOFT"
    HARD = "HARD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class ItemStatus(StrEnum):
    PENDING = "PENDING"
    FULFILLED = "FULFILLED"
    SUBSTITUTED = "SUBSTITUTED"
    CANCELLED = "CANCELLED"


class RiderStatus(StrEnum):
    OFFLINE = "OFFLINE"
    IDLE = "IDLE"
    ASSIGNED = "ASSIGNED"
    AT_STORE = "AT_STORE"
    DELIVERING = "DELIVERING"
    RETURNING = "RETURNING"


class Movement(StrEnum):
    """Kinds of stock movement in the append-only ledger."""

    RECEIPT = "RECEIPT"  # stock arrives (in_transit -> available, or new stock)
    DISPATCH = "DISPATCH"  # replenishment sent from the warehouse (-> in_transit)
    RESERVE = "RESERVE"  # available -> reserved (cart hold)
    RELEASE = "RELEASE"  # reserved -> available (cart removal, payment failure, cancel)
    EXPIRE = "EXPIRE"  # reserved -> available (hold timed out)
    COMMIT = "COMMIT"  # reserved -> gone (paid order leaves the books)
    DAMAGE = "DAMAGE"  # available -> damaged
    WRITE_OFF = "WRITE_OFF"  # damaged -> gone
    TRANSFER = "TRANSFER"  # between stores
    ADJUSTMENT = "ADJUSTMENT"  # cycle count correction
    SHORT_PICK = "SHORT_PICK"  # picker found less than the books said
    RETURN = "RETURN"  # committed units back to available (order cancelled before picking)


class AlertKind(StrEnum):
    """Why the control tower is calling a manager's attention."""

    STORE_OVERLOADED = "store_overloaded"
    SLA_BREACH_PREDICTED = "sla_breach_predicted"
    RIDER_IDLE = "rider_idle"
    RIDER_SIGNAL_LOST = "rider_signal_lost"
    OTP_LOCKED = "otp_locked"
    TOP_SELLER_STOCK_OUT = "top_seller_stock_out"
    RECONCILIATION_DRIFT = "reconciliation_drift"
    STOCKOUT_RISK = "stockout_risk"


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
