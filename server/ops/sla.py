"""SLA prediction and store risk: pure functions over plain numbers, so they are tested
without a database and the feed, the alerts and the simulation report agree on them.

An order's remaining time is what is left of each stage, estimated from what the store
knows now: the pick queue ahead of it and the pick estimate of its task (a rider is found
meanwhile, so whichever takes longer), a rider still to come for a packed order, and the
ride to the door.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.delivery import planning
from shared.enums import OrderStatus
from shared.geo import LatLng, haversine_m

DEFAULT_PICK_S = 180.0  # a task without its own estimate yet
RIDER_WAIT_S = 120.0  # a packed order with no rider: the next offer, accept and ride in
RIDER_ASSIGNED_WAIT_S = 60.0  # the assigned rider still has to reach the bag
HANDOVER_S = 30.0  # parking, stairs, OTP

WAITING_FOR_PICK = frozenset({OrderStatus.PLACED, OrderStatus.CONFIRMED})
BEING_PICKED = frozenset({OrderStatus.PICKING, OrderStatus.PARTIALLY_FULFILLED})
ON_THE_ROAD = frozenset({OrderStatus.DISPATCHED, OrderStatus.OUT_FOR_DELIVERY})
# not yet handed to a rider: the store's own queue
IN_STORE = WAITING_FOR_PICK | BEING_PICKED | {OrderStatus.PACKED}


@dataclass(frozen=True)
class OrderProgress:
    """What the predictor needs of one active order (times in epoch seconds)."""

    status: str
    store: LatLng
    drop: LatLng
    sla_deadline_s: float | None
    pick_estimate_s: float | None = None
    pick_started_s: float | None = None
    has_rider: bool = False
    rider_at: LatLng | None = None


def ride_s(start: LatLng, drop: LatLng) -> float:
    return planning.eta_s(haversine_m(start, drop)) + HANDOVER_S


def remaining_s(order: OrderProgress, *, now_s: float, queue_ahead_s: float = 0.0) -> float:
    """Seconds until the order is at the door, from ``now_s``. ``queue_ahead_s`` is the
    picking time of orders ahead of it in the store's queue, per free picker."""
    pick = order.pick_estimate_s if order.pick_estimate_s else DEFAULT_PICK_S
    rider_wait = RIDER_ASSIGNED_WAIT_S if order.has_rider else RIDER_WAIT_S
    # the dispatcher finds the rider while the order is picked: the longer of the two
    if order.status in WAITING_FOR_PICK:
        return max(queue_ahead_s + pick, rider_wait) + ride_s(order.store, order.drop)
    if order.status in BEING_PICKED:
        started = order.pick_started_s if order.pick_started_s is not None else now_s
        left = max(0.0, started + pick - now_s)
        return max(left, rider_wait) + ride_s(order.store, order.drop)
    if order.status == OrderStatus.PACKED:
        return rider_wait + ride_s(order.store, order.drop)
    if order.status in ON_THE_ROAD:
        return ride_s(order.rider_at or order.store, order.drop)
    return 0.0


def breach_predicted(order: OrderProgress, *, now_s: float, queue_ahead_s: float = 0.0) -> bool:
    if order.sla_deadline_s is None:
        return False
    return now_s + remaining_s(order, now_s=now_s, queue_ahead_s=queue_ahead_s) > (
        order.sla_deadline_s
    )


def queue_wait_s(orders_ahead: int, *, pickers: int, mean_pick_s: float = DEFAULT_PICK_S) -> float:
    """Time before a waiting order's pick starts: the orders ahead shared by the pickers
    (a store with no active picker is treated as having one: somebody will come)."""
    return orders_ahead * mean_pick_s / max(1, pickers)


@dataclass(frozen=True)
class StoreLoad:
    in_store: int  # orders not yet with a rider
    predicted_breaches: int
    oldest_wait_s: float
    active_pickers: int
    idle_riders: int
    is_operational: bool
    sla_s: float = 900.0


OVERLOAD_ORDERS_PER_PICKER = 4  # more waiting than this per picker is an overload


def is_overloaded(load: StoreLoad) -> bool:
    return load.is_operational and load.in_store > OVERLOAD_ORDERS_PER_PICKER * max(
        1, load.active_pickers
    )


def store_risk(load: StoreLoad) -> float:
    """0..1, higher is worse: orders predicted to breach weigh most, then how close the
    oldest waiting order is to the SLA, then the queue per picker and a lack of riders."""
    if load.in_store == 0:
        return 0.0
    breach = load.predicted_breaches / load.in_store
    age = min(1.0, load.oldest_wait_s / load.sla_s)
    queue = min(1.0, load.in_store / (OVERLOAD_ORDERS_PER_PICKER * max(1, load.active_pickers)))
    riders = 0.0 if load.idle_riders else 1.0
    return round(min(1.0, 0.45 * breach + 0.25 * age + 0.2 * queue + 0.1 * riders), 3)
