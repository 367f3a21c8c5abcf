"""The city as the control tower last heard it: the ops feed applied to an in-memory view.

Pure: no I/O, no Textual. :class:`CityView` takes the feed's ``OpsSnapshot`` (replace
everything) and ``OpsChanges`` (upserts by id, ``removed_*`` ids), says which sections
changed so screens redraw only those, and converts to the widgets' dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from pydantic import ValidationError

from control_tower.trends import Trends
from control_tower.widgets.models import (
    DEFAULT_SLA_S,
    IN_STORE_STATES,
    Alert,
    DropDot,
    KpiValue,
    PipelineOrder,
    RiderDot,
    Severity,
    StoreRow,
)
from shared.enums import RiderStatus
from shared.schemas.ops import (
    AlertPublic,
    CityOps,
    FlashQueueOps,
    OpsChanges,
    OpsOrder,
    OpsPicker,
    OpsRider,
    OpsSnapshot,
    StoreOps,
)

FeedPayload = OpsSnapshot | OpsChanges

CITY = "city"
STORES = "stores"
ORDERS = "orders"
RIDERS = "riders"
PICKERS = "pickers"
ALERTS = "alerts"
SECTIONS: frozenset[str] = frozenset({CITY, STORES, ORDERS, RIDERS, PICKERS, ALERTS})
NOTHING: frozenset[str] = frozenset()

# Flash-sale states that cannot be stopped any more (compared case-insensitively).
FINISHED_SALE_STATES = frozenset({"STOPPED", "ENDED", "SOLD_OUT", "CANCELLED", "CLOSED", "DONE"})

_SEVERITIES = {s.value: s for s in Severity}

# The order riders are listed in: who can take an order now first, offline last.
RIDER_RANK: dict[str, int] = {
    RiderStatus.IDLE: 0,
    RiderStatus.AT_STORE: 1,
    RiderStatus.RETURNING: 2,
    RiderStatus.ASSIGNED: 3,
    RiderStatus.DELIVERING: 4,
    RiderStatus.OFFLINE: 6,
}


class FeedFormatError(ValueError):
    """A feed message this version cannot read."""


def parse_message(raw: str | bytes | dict[str, Any]) -> FeedPayload | None:
    """A feed message as a schema object; None for keep-alives (``ping``) and unknown
    types (a newer server may add some). Raises :class:`FeedFormatError` for a
    snapshot or changes message that does not match the schema."""
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise FeedFormatError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FeedFormatError("a feed message must be a JSON object")
    kind = data.get("type")
    try:
        if kind == "snapshot":
            return OpsSnapshot.model_validate(data)
        if kind == "changes":
            return OpsChanges.model_validate(data)
    except ValidationError as exc:
        raise FeedFormatError(f"bad {kind} message: {exc}") from exc
    return None


def error_detail(raw: str | bytes) -> str | None:
    """The detail of an ``{"type": "error", "error": {problem}}`` frame (the server says
    why it refuses before it closes the socket); None for any other message."""
    if b'"error"' not in (raw if isinstance(raw, bytes) else raw.encode()):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "error":
        return None
    problem = data.get("error")
    if isinstance(problem, dict):
        return str(problem.get("detail") or problem.get("code") or "refused")
    return str(problem or "refused")


def store_row(store: StoreOps) -> StoreRow:
    return StoreRow(
        store_id=store.store_id,
        name=store.name,
        lat=store.lat,
        lng=store.lng,
        orders_by_state=dict(store.orders_by_state),
        oldest_wait_s=store.oldest_wait_s,
        predicted_breaches=store.predicted_breaches,
        active_pickers=store.active_pickers,
        idle_riders=store.idle_riders,
        busy_riders=store.busy_riders,
        low_stock=store.low_stock,
        stock_outs=store.stock_outs,
        sold_out_today=store.sold_out_today,
        paused=not store.is_operational,
        opens_at=store.opens_at,
        risk=store.risk,
    )


def alert_item(alert: AlertPublic, tz: tzinfo | None = None) -> Alert:
    """``tz``: the zone the time is shown in (None: this machine's)."""
    return Alert(
        alert_id=str(alert.alert_id),
        kind=alert.kind,
        severity=_SEVERITIES.get(alert.severity.lower(), Severity.INFO),
        store_id=alert.store_id,
        message=alert.message,
        raised_at=alert.raised_at.astimezone(tz),
        acknowledged=alert.acknowledged_at is not None,
    )


def sale_is_open(sale: FlashQueueOps) -> bool:
    return sale.status.upper() not in FINISHED_SALE_STATES


@dataclass(frozen=True)
class _Seen:
    """An order and the feed time its ``age_s`` was measured at."""

    order: OpsOrder
    at: datetime


class CityView:
    """The last known state of one city."""

    def __init__(self) -> None:
        self.at: datetime | None = None  # feed time of the newest message applied
        self.clock_speed = 1.0  # the server clock's speed, from the last snapshot
        self.city: CityOps | None = None
        self.stores: dict[str, StoreOps] = {}
        self.riders: dict[str, OpsRider] = {}
        self.pickers: dict[str, OpsPicker] = {}
        self.alerts: dict[str, AlertPublic] = {}
        self._orders: dict[str, _Seen] = {}
        self.version = 0  # bumped by every message that changed something
        self.snapshots = 0  # snapshots applied (one per (re)connection)
        self.trends = Trends()  # kept across reconnections: a new snapshot adds to it

    @property
    def ready(self) -> bool:
        """A snapshot has been applied: there is a city to show."""
        return self.at is not None

    @property
    def orders(self) -> dict[str, OpsOrder]:
        return {order_id: seen.order for order_id, seen in self._orders.items()}

    # --- applying the feed -------------------------------------------------------------
    def apply(self, payload: FeedPayload) -> frozenset[str]:
        if isinstance(payload, OpsSnapshot):
            changed = self.apply_snapshot(payload)
        else:
            changed = self.apply_changes(payload)
        if self.at is not None:
            self.trends.record(self.at, self.city, self.stores.values())
        return changed

    def apply_snapshot(self, snapshot: OpsSnapshot) -> frozenset[str]:
        """Replace the whole view: whatever the snapshot lacks is gone."""
        self.at = snapshot.at
        self.clock_speed = snapshot.clock_speed
        self.city = snapshot.city
        self.stores = {s.store_id: s for s in snapshot.stores}
        self._orders = {str(o.order_id): _Seen(o, snapshot.at) for o in snapshot.orders}
        self.riders = {str(r.rider_id): r for r in snapshot.riders}
        self.pickers = {str(p.user_id): p for p in snapshot.pickers}
        self.alerts = {str(a.alert_id): a for a in snapshot.alerts if a.resolved_at is None}
        self.version += 1
        self.snapshots += 1
        return SECTIONS

    def apply_changes(self, changes: OpsChanges) -> frozenset[str]:
        """Upsert and remove by id. Changes before any snapshot have nothing to apply to
        and are ignored (the feed always starts a connection with a snapshot)."""
        if self.at is None:
            return NOTHING
        self.at = max(self.at, changes.at)
        changed: set[str] = set()
        if changes.city is not None:
            self.city = changes.city
            changed.add(CITY)
        if changes.stores:
            self.stores.update((s.store_id, s) for s in changes.stores)
            changed.add(STORES)
        if changes.orders or changes.removed_orders:
            for order in changes.orders:
                self._orders[str(order.order_id)] = _Seen(order, changes.at)
            for order_id in changes.removed_orders:
                self._orders.pop(str(order_id), None)
            changed.add(ORDERS)
        if changes.riders or changes.removed_riders:
            self.riders.update((str(r.rider_id), r) for r in changes.riders)
            for rider_id in changes.removed_riders:
                self.riders.pop(str(rider_id), None)
            changed.add(RIDERS)
        if changes.pickers or changes.removed_pickers:
            self.pickers.update((str(p.user_id), p) for p in changes.pickers)
            for user_id in changes.removed_pickers:
                self.pickers.pop(str(user_id), None)
            changed.add(PICKERS)
        if changes.alerts or changes.removed_alerts:
            for alert in changes.alerts:
                self._put_alert(alert)
            for alert_id in changes.removed_alerts:
                self.alerts.pop(str(alert_id), None)
            changed.add(ALERTS)
        if changed:
            self.version += 1
        return frozenset(changed)

    def put_alert(self, alert: AlertPublic) -> frozenset[str]:
        """An alert as an API answer returned it (e.g. just acknowledged)."""
        self._put_alert(alert)
        self.version += 1
        return frozenset({ALERTS})

    def _put_alert(self, alert: AlertPublic) -> None:
        if alert.resolved_at is not None:  # the view holds open alerts only
            self.alerts.pop(str(alert.alert_id), None)
        else:
            self.alerts[str(alert.alert_id)] = alert

    def put_store_settings(self, store: StoreOps) -> frozenset[str]:
        """A store as an action's answer returned it: take what the manager set (paused,
        reason, radius) and keep the live numbers, which the feed owns."""
        known = self.stores.get(store.store_id)
        if known is None:
            return NOTHING
        self.stores[store.store_id] = known.model_copy(
            update={
                "is_operational": store.is_operational,
                "paused_reason": store.paused_reason,
                "service_radius_m": store.service_radius_m,
            }
        )
        self.version += 1
        return frozenset({STORES})

    # --- reading it -----------------------------------------------------------------
    def store_rows(self) -> list[StoreRow]:
        return [store_row(s) for s in self.stores.values()]

    def store_orders(self, store_id: str) -> list[OpsOrder]:
        """The store's active orders, oldest first (by age now)."""
        seen = [s for s in self._orders.values() if s.order.store_id == store_id]
        seen.sort(key=lambda s: (-self._age(s), str(s.order.order_id)))
        return [s.order for s in seen]

    def order_age_s(self, order_id: str) -> float:
        return self._age(self._orders[order_id])

    def _age(self, seen: _Seen) -> float:
        """The order's age at the view's time (a change may have carried it a while ago)."""
        later = (self.at - seen.at).total_seconds() if self.at is not None else 0.0
        return seen.order.age_s + max(0.0, later)

    def pipeline(self, store_id: str) -> list[PipelineOrder]:
        """The store's orders for the pipeline board, aged to the view's time. The SLA is
        the age the order will have at its deadline, so timers turn red as the deadline
        nears whatever moment the server counts the age from."""
        board = []
        for seen in self._orders.values():
            order = seen.order
            if order.store_id != store_id:
                continue
            age = self._age(seen)
            if order.sla_deadline is not None:
                sla_s = seen.order.age_s + (order.sla_deadline - seen.at).total_seconds()
            else:
                sla_s = DEFAULT_SLA_S
            board.append(PipelineOrder(str(order.order_id), order.status, age, sla_s))
        return board

    def rider_dots(self, store_id: str | None = None) -> list[RiderDot]:
        return [
            RiderDot(str(r.rider_id), r.lat, r.lng, r.status)
            for r in self.riders.values()
            if r.lat is not None and r.lng is not None
            and (store_id is None or r.store_id == store_id)
        ]  # fmt: skip

    def drop_dots(self, store_id: str | None = None) -> list[DropDot]:
        return [
            DropDot(str(s.order.order_id), s.order.drop_lat, s.order.drop_lng)
            for s in self._orders.values()
            if s.order.drop_lat is not None and s.order.drop_lng is not None
            and (store_id is None or s.order.store_id == store_id)
        ]  # fmt: skip

    def alert_items(self, store_id: str | None = None, tz: tzinfo | None = None) -> list[Alert]:
        return [
            alert_item(a, tz)
            for a in self.alerts.values()
            if store_id is None or a.store_id == store_id
        ]

    def store_riders(self, store_id: str) -> list[OpsRider]:
        """The store's riders: idle first (longest idle first), offline last, then by name."""

        def rank(r: OpsRider) -> tuple[int, float, str]:
            return (RIDER_RANK.get(r.status, len(RIDER_RANK)), -(r.idle_s or 0.0), r.name)

        return sorted((r for r in self.riders.values() if r.store_id == store_id), key=rank)

    def reassignable_orders(self, store_id: str) -> list[OpsOrder]:
        """The store's orders a manager can give to another rider: those still in the
        store (the server refuses the ones already on the road), oldest first."""
        return [o for o in self.store_orders(store_id) if o.status in IN_STORE_STATES]

    def reassign_candidates(self, order: OpsOrder) -> list[OpsRider]:
        """Idle riders of the order's store (the server gives orders to idle riders only),
        longest idle first, never the one already carrying it."""
        return [
            r
            for r in self.store_riders(order.store_id)
            if r.status == RiderStatus.IDLE and r.rider_id != order.rider_id
        ]

    def movable_riders(self, store_id: str) -> list[OpsRider]:
        """Riders of the store a manager can send to another store: those without a trip
        (the server refuses the others until their trip is done)."""
        free = (RiderStatus.IDLE, RiderStatus.OFFLINE)
        return [r for r in self.store_riders(store_id) if r.status in free]

    def store_pickers(self, store_id: str) -> list[OpsPicker]:
        return sorted(
            (p for p in self.pickers.values() if p.store_id == store_id), key=lambda p: p.name
        )

    def flash_sales(self, *, open_only: bool = False) -> list[FlashQueueOps]:
        sales = self.city.flash_queues if self.city is not None else []
        return [s for s in sales if sale_is_open(s) or not open_only]

    def kpis(self) -> list[KpiValue]:
        """Readings for the overview's tiles; a KPI with no value yet is left out."""
        if not self.ready:
            return []
        stores = self.stores.values()
        readings = [
            KpiValue("late", sum(s.predicted_breaches for s in stores)),
            KpiValue("idle", sum(s.idle_riders for s in stores)),
            KpiValue("alerts", sum(a.acknowledged_at is None for a in self.alerts.values())),
        ]
        city = self.city
        if city is not None:
            series = city.orders_per_minute
            delta = series[-1] - series[-2] if len(series) >= 2 else None
            readings.append(KpiValue("orders", city.orders_last_minute, delta))
            readings.append(KpiValue("delivered", city.delivered_today))
            if city.within_10_share is not None:
                # read together: a city that refused everyone would keep any promise
                refused = city.refused_share
                note = None if refused is None else f"{refused * 100:.0f} % refused"
                readings.append(KpiValue("within10", city.within_10_share * 100, note=note))
            if city.p90_door_s is not None:
                readings.append(KpiValue("p90", city.p90_door_s / 60))
        return readings
