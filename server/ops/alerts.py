"""Alerts for city managers: raised from the events of what happened (an OTP locked, a
rider's signal lost, drift found by the reconciler; ``alert.<kind>`` topics, handled here
in the transaction that emitted them) or by the evaluator from the live figures (overload,
predicted SLA breaches, idle riders, top sellers out of stock, forecast risk).

One open alert per condition (``dedupe_key``): raising it again refreshes its message.
Condition alerts resolve themselves when the condition clears; event alerts resolve when
a manager acknowledges them. Acknowledging a condition alert only records who saw it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import Event, alert_topic, handles
from server.identity.access import check_city_scope
from server.identity.models import User
from server.kit.errors import NotFound
from server.ops import sla
from server.ops.audit import record_action
from server.ops.models import OpsAlert
from shared.enums import AlertKind, AlertSeverity, RiderStatus
from shared.schemas.ops import AlertPublic, OpsSnapshot

CONDITION_KINDS = frozenset(
    {
        AlertKind.STORE_OVERLOADED,
        AlertKind.SLA_BREACH_PREDICTED,
        AlertKind.RIDER_IDLE,
        AlertKind.TOP_SELLER_STOCK_OUT,
        AlertKind.STOCKOUT_RISK,
    }
)
RIDER_IDLE_AFTER = timedelta(minutes=20)
TOP_SELLERS = 20  # per store, by units ordered in the last week
TOP_SELLER_WINDOW = timedelta(days=7)

_RAISE = text("""
    INSERT INTO ops_alerts (alert_id, city_id, store_id, kind, severity, subject, message,
                            dedupe_key, raised_at)
    VALUES (:id, coalesce(:city, (SELECT city_id FROM dark_stores WHERE store_id = :store)),
            :store, :kind, :severity, :subject, :message, :key, :now)
    ON CONFLICT (dedupe_key) WHERE resolved_at IS NULL
    DO UPDATE SET message = EXCLUDED.message, severity = EXCLUDED.severity""")

_RESOLVE_CLEARED = text("""
    UPDATE ops_alerts SET resolved_at = :now
    WHERE city_id = :city AND resolved_at IS NULL AND kind = ANY(:kinds)
      AND NOT (dedupe_key = ANY(:keep))""")

# demand is what customers ordered: short-picked units (a stock-out's first symptom) count
_TOP_SELLERS_OUT = text("""
    WITH sold AS (
        SELECT oi.store_id, oi.sku_id, sum(oi.ordered_qty) AS units
        FROM order_items oi
        JOIN orders o ON o.store_id = oi.store_id AND o.order_id = oi.order_id
        WHERE o.store_id = ANY(:stores) AND o.placed_at > :since AND o.status <> 'CANCELLED'
        GROUP BY oi.store_id, oi.sku_id),
    ranked AS (
        SELECT store_id, sku_id,
               row_number() OVER (PARTITION BY store_id ORDER BY units DESC, sku_id) AS rank
        FROM sold)
    SELECT r.store_id, r.sku_id, p.name
    FROM ranked r
    JOIN store_inventory i ON i.store_id = r.store_id AND i.sku_id = r.sku_id
    JOIN products p ON p.sku_id = r.sku_id
    WHERE r.rank <= :top AND i.available_qty = 0""")


def alert_key(kind: AlertKind, *parts: str) -> str:
    return ":".join([kind.value, *parts])


async def raise_alert(
    session: AsyncSession,
    *,
    kind: AlertKind,
    severity: AlertSeverity,
    message: str,
    now: datetime,
    store_id: str | None = None,
    city_id: str | None = None,
    subject: str | None = None,
    key: str | None = None,
) -> None:
    """Open an alert (or refresh the open one with the same key). A store's city is
    looked up when ``city_id`` is not given."""
    if city_id is None and store_id is None:
        raise ValueError("an alert needs a store or a city")
    await session.execute(
        _RAISE,
        {
            "id": uuid.uuid4(),
            "city": city_id,
            "store": store_id,
            "kind": kind.value,
            "severity": severity.value,
            "subject": subject,
            "message": message[:300],
            "key": key or alert_key(kind, store_id or city_id or "", subject or ""),
            "now": now,
        },
    )


def public(alert: OpsAlert) -> AlertPublic:
    return AlertPublic.model_validate(alert, from_attributes=True)


async def open_alerts(session: AsyncSession, *, city_id: str) -> list[AlertPublic]:
    rows = await session.exec(
        select(OpsAlert)
        .where(OpsAlert.city_id == city_id, col(OpsAlert.resolved_at).is_(None))
        .order_by(col(OpsAlert.raised_at).desc(), col(OpsAlert.alert_id))
    )
    return [public(a) for a in rows.all()]


async def acknowledge(
    session: AsyncSession, *, alert_id: uuid.UUID, manager: User, now: datetime
) -> OpsAlert:
    alert = await session.get(OpsAlert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound("no such alert", code="alert_not_found")
    check_city_scope(manager, city_id=alert.city_id, what="the alert")
    if alert.acknowledged_at is None:  # acknowledging again changes nothing: no new row
        alert.acknowledged_at, alert.acknowledged_by = now, manager.id
        await record_action(
            session,
            actor_id=manager.id,
            city_id=alert.city_id,
            action="alert.acknowledge",
            target=str(alert.alert_id),
            now=now,
            details={"kind": alert.kind, "store_id": alert.store_id, "message": alert.message},
        )
    if alert.kind not in CONDITION_KINDS and alert.resolved_at is None:
        alert.resolved_at = now  # an event has been seen to: nothing left to clear it
    session.add(alert)
    await session.flush()
    return alert


async def evaluate_city(session: AsyncSession, *, snapshot: OpsSnapshot, now: datetime) -> int:
    """Raise the condition alerts the live figures call for and resolve those that cleared.
    Returns how many conditions hold."""
    city = snapshot.city.city_id
    raised: list[str] = []

    async def hold(
        kind: AlertKind,
        severity: AlertSeverity,
        message: str,
        *,
        store_id: str | None = None,
        subject: str | None = None,
    ) -> None:
        key = alert_key(kind, store_id or city, subject or "")
        await raise_alert(
            session,
            kind=kind,
            severity=severity,
            message=message,
            now=now,
            city_id=city,
            store_id=store_id,
            subject=subject,
            key=key,
        )
        raised.append(key)

    for s in snapshot.stores:
        if not s.is_operational:
            continue
        in_store = sum(n for st, n in s.orders_by_state.items() if st in sla.IN_STORE)
        load = sla.StoreLoad(
            in_store=in_store,
            predicted_breaches=s.predicted_breaches,
            oldest_wait_s=s.oldest_wait_s,
            active_pickers=s.active_pickers,
            idle_riders=s.idle_riders,
            is_operational=s.is_operational,
        )
        if sla.is_overloaded(load):
            await hold(
                AlertKind.STORE_OVERLOADED,
                AlertSeverity.WARNING,
                f"{s.name}: {in_store} orders waiting for {max(1, s.active_pickers)} picker(s)",
                store_id=s.store_id,
            )
        if s.predicted_breaches:
            await hold(
                AlertKind.SLA_BREACH_PREDICTED,
                AlertSeverity.CRITICAL if s.predicted_breaches >= 3 else AlertSeverity.WARNING,
                f"{s.name}: {s.predicted_breaches} order(s) predicted to miss the SLA",
                store_id=s.store_id,
            )
        if s.stockout_risk:
            await hold(
                AlertKind.STOCKOUT_RISK,
                AlertSeverity.INFO,
                f"{s.name}: {s.stockout_risk} SKU(s) may run out within 24 h",
                store_id=s.store_id,
            )
    for r in snapshot.riders:
        if r.status == RiderStatus.IDLE and (r.idle_s or 0) > RIDER_IDLE_AFTER.total_seconds():
            await hold(
                AlertKind.RIDER_IDLE,
                AlertSeverity.INFO,
                f"{r.name} idle for {int((r.idle_s or 0) // 60)} min",
                store_id=r.store_id,
                subject=str(r.rider_id),
            )
    rows = await session.execute(
        _TOP_SELLERS_OUT,
        {
            "stores": [s.store_id for s in snapshot.stores if s.is_operational],
            "since": now - TOP_SELLER_WINDOW,
            "top": TOP_SELLERS,
        },
    )
    for store_id, sku_id, name in rows.all():
        await hold(
            AlertKind.TOP_SELLER_STOCK_OUT,
            AlertSeverity.WARNING,
            f"{store_id}: top seller {name} ({sku_id}) is out of stock",
            store_id=store_id,
            subject=sku_id,
        )
    await session.execute(
        _RESOLVE_CLEARED,
        {
            "now": now,
            "city": city,
            "kinds": [k.value for k in CONDITION_KINDS],
            "keep": raised,
        },
    )
    return len(raised)


# --- alerts from the events of lower domains (they emit facts; the wording is ours) ---------


def _raise_on(
    kind: AlertKind,
    severity: AlertSeverity,
    describe: Callable[[AsyncSession, Event], Awaitable[tuple[str, str]]],
    *,
    one_per_event: bool = False,
) -> None:
    """Raise a ``kind`` alert for every ``alert.<kind>`` event, in the event's transaction.
    ``describe`` gives the alert's subject and message; ``one_per_event`` keeps each event
    its own alert instead of refreshing the open one."""

    async def handler(session: AsyncSession, event: Event) -> None:
        subject, message = await describe(session, event)
        await raise_alert(
            session,
            kind=kind,
            severity=severity,
            store_id=event.store_id,
            subject=subject,
            message=message,
            key=f"{kind.value}:{event.store_id}:{event.now.isoformat()}" if one_per_event else None,
            now=event.now,
        )

    handles(alert_topic(kind))(handler)


async def _rider_name(session: AsyncSession, rider_id: str) -> str:
    """The name the tower's tables show ("Rider 018"), not an id."""
    user = await session.get(User, uuid.UUID(rider_id))
    return user.name if user is not None else f"rider {rider_id[:8]}"


async def _otp_locked(_session: AsyncSession, e: Event) -> tuple[str, str]:
    order_id = e.payload["order_id"]
    return order_id, f"OTP locked after {e.payload['tries']} wrong tries on order {order_id[:8]}"


async def _signal_lost(session: AsyncSession, e: Event) -> tuple[str, str]:
    rider = await _rider_name(session, e.payload["rider_id"])
    minutes = e.payload["silent_s"] // 60
    return e.payload["rider_id"], f"no signal from {rider} for {minutes} min; trip reassigned"


async def _drift(_session: AsyncSession, e: Event) -> tuple[str, str]:
    records = e.payload["records"]
    mended, short = e.payload.get("books_mended", []), e.payload.get("books_short", [])
    told = []
    if records:
        told.append(
            f"Redis and PostgreSQL disagreed on {records} stock record(s); "
            f"reloaded from PostgreSQL ({', '.join(e.payload['sample'])})"
        )
    if mended:
        told.append(f"reserved units mended to the open holds ({'; '.join(mended)})")
    if short:
        told.append(f"holds need more units than the shelf has, count them ({'; '.join(short)})")
    subject = f"{records} keys" if records else f"{len(mended) + len(short)} SKUs"
    return subject, f"{e.store_id}: " + "; ".join(told)


_raise_on(AlertKind.OTP_LOCKED, AlertSeverity.CRITICAL, _otp_locked)
_raise_on(AlertKind.RIDER_SIGNAL_LOST, AlertSeverity.WARNING, _signal_lost)
# each reconciliation that found drift is a report of its own
_raise_on(AlertKind.RECONCILIATION_DRIFT, AlertSeverity.WARNING, _drift, one_per_event=True)
