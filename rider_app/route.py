"""The trip as the rider rides it: distance and riding time of each leg, from where the
rider is now, through the store (until the bags are on board) and the open drops in route
order. Pure functions: the position and the trip are passed in.

The speed model is the dispatcher's (straight line x road factor at a city two-wheeler
average, a minute per handover). The trip screen shows the server's ETA per drop
(``eta_at``, the customer's ETA) when the trip carries one; this estimate, from the
handheld's own position, covers the store leg and servers that do not send ETAs.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.geo import LatLng, haversine_m
from shared.schemas.delivery import TripPublic, TripStopPublic

ROAD_FACTOR = 1.35
RIDE_SPEED_MPS = 5.0  # ~18 km/h through city traffic, stops included
HANDOVER_S = 60.0  # at the door, per drop

BEFORE_PICKUP = ("OFFERED", "ACCEPTED", "AT_STORE")
OPEN_STOP = ("PENDING", "ARRIVED")


def ride_s(metres: float) -> float:
    return metres * ROAD_FACTOR / RIDE_SPEED_MPS


@dataclass(frozen=True, slots=True)
class Leg:
    """How far this point is from the previous one, and when the rider gets there."""

    distance_m: float | None  # None: the rider's position is not known yet
    eta_s: float | None  # seconds from now


@dataclass(frozen=True, slots=True)
class RoutePlan:
    store: Leg | None  # None once the bags are on board
    drops: dict[str, Leg]  # order id -> leg, open drops only, in route order

    @property
    def total_m(self) -> float | None:
        legs = ([self.store] if self.store else []) + list(self.drops.values())
        if any(leg.distance_m is None for leg in legs):
            return None
        return sum(leg.distance_m or 0.0 for leg in legs)

    @property
    def finish_s(self) -> float | None:
        last = list(self.drops.values())[-1:] or ([self.store] if self.store else [])
        return last[0].eta_s if last else None


def open_stops(trip: TripPublic) -> list[TripStopPublic]:
    return [s for s in sorted(trip.stops, key=lambda s: s.seq) if s.status in OPEN_STOP]


def next_stop(trip: TripPublic) -> TripStopPublic | None:
    stops = open_stops(trip)
    return stops[0] if stops else None


def plan(trip: TripPublic, here: LatLng | None) -> RoutePlan:
    store_at = LatLng(trip.store_lat, trip.store_lng)
    cursor: LatLng | None = here
    elapsed: float | None = 0.0
    store: Leg | None = None
    if trip.status in BEFORE_PICKUP:
        if trip.status == "AT_STORE":
            store = Leg(0.0 if here is None else haversine_m(here, store_at), 0.0)
        elif here is None:
            store, elapsed = Leg(None, None), None
        else:
            metres = haversine_m(here, store_at)
            store, elapsed = Leg(metres, ride_s(metres)), ride_s(metres)
        cursor = store_at
    elif trip.status == "PICKED_UP":  # still at the store, bags on board
        cursor = store_at
    drops: dict[str, Leg] = {}
    for n, stop in enumerate(open_stops(trip)):
        drop = LatLng(stop.lat, stop.lng)
        if cursor is None:
            drops[str(stop.order_id)] = Leg(None, None)
            elapsed = None
        else:
            metres = haversine_m(cursor, drop)
            if elapsed is not None:
                elapsed += ride_s(metres) + (HANDOVER_S if n else 0.0)
            drops[str(stop.order_id)] = Leg(metres, elapsed)
        cursor = drop
    return RoutePlan(store, drops)
