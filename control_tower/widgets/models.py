"""Plain data the control-tower widgets display.

The app turns API/websocket payloads into these; the widgets never parse wire formats,
so they can be driven from tests and snapshots with literal values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shared.enums import OrderStatus
from shared.geo import LatLng

DEFAULT_SLA_S = 900.0  # seconds from confirmation to doorstep

# States in which an order still sits in the store (counted as the store's queue).
IN_STORE_STATES: frozenset[str] = frozenset(
    {
        OrderStatus.CONFIRMED,
        OrderStatus.PICKING,
        OrderStatus.PARTIALLY_FULFILLED,
        OrderStatus.PACKED,
    }
)
ON_ROAD_STATES: frozenset[str] = frozenset({OrderStatus.DISPATCHED, OrderStatus.OUT_FOR_DELIVERY})


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class StoreRow:
    """One dark store's live numbers; ``risk`` is a 0..1 score, higher is worse."""

    store_id: str
    name: str
    lat: float
    lng: float
    orders_by_state: dict[str, int] = field(default_factory=dict)
    oldest_wait_s: float = 0.0
    predicted_breaches: int = 0
    active_pickers: int = 0
    idle_riders: int = 0
    busy_riders: int = 0
    low_stock: int = 0
    stock_outs: int = 0  # none on the shelf, whatever the cause
    sold_out_today: int = 0  # of those, sold out today (the rest: not restocked, never stocked)
    paused: bool = False
    opens_at: datetime | None = None  # closed by its hours: when it opens
    risk: float = 0.0

    @property
    def location(self) -> LatLng:
        return LatLng(self.lat, self.lng)

    @property
    def queued(self) -> int:
        """Orders still inside the store (confirmed, being picked or packed)."""
        return sum(n for s, n in self.orders_by_state.items() if s in IN_STORE_STATES)

    @property
    def on_road(self) -> int:
        return sum(n for s, n in self.orders_by_state.items() if s in ON_ROAD_STATES)


@dataclass(frozen=True)
class RiderDot:
    rider_id: str
    lat: float
    lng: float
    status: str  # a shared.enums.RiderStatus value

    @property
    def location(self) -> LatLng:
        return LatLng(self.lat, self.lng)


@dataclass(frozen=True)
class DropDot:
    """A customer address an order is heading to."""

    order_id: str
    lat: float
    lng: float

    @property
    def location(self) -> LatLng:
        return LatLng(self.lat, self.lng)


@dataclass(frozen=True)
class PipelineOrder:
    """An order in a store's pipeline; ``age_s`` is its age when the data was produced."""

    order_id: str
    state: str  # a shared.enums.OrderStatus value
    age_s: float
    sla_s: float = DEFAULT_SLA_S


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    severity: Severity
    store_id: str | None
    message: str
    raised_at: datetime
    acknowledged: bool = False


@dataclass(frozen=True)
class KpiValue:
    """A reading for the KPI tile with the same ``key``; ``delta`` is the change the
    caller wants shown (e.g. against 15 minutes ago), or None for no trend; ``note`` a
    figure to read with it, shown in the trend's place (e.g. the share refused beside the
    share delivered in time)."""

    key: str
    value: float
    delta: float | None = None
    note: str | None = None
