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

from rider_app.formats import masked_phone
from shared.geo import LatLng, bearing_deg, haversine_m
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


COMPASS = (
    "north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"
)  # fmt: skip


def heading(a: LatLng, b: LatLng) -> str:
    """The compass word for riding from ``a`` to ``b`` (8 points)."""
    return COMPASS[round(bearing_deg(a, b) / 45.0) % 8]


@dataclass(frozen=True, slots=True)
class Stop:
    """One point of the route as the route view draws and lists it."""

    mark: str  # "S" for the store, the drop's number in route order
    label: str
    at: LatLng
    leg: Leg  # from the previous point (the rider, the store, the drop before)
    heading: str | None  # None when where it comes from is unknown


def stops_in_order(trip: TripPublic, here: LatLng | None) -> list[Stop]:
    """Where the rider still has to go, in order: the store until the bags are on board,
    then the open drops; each with its leg (from ``plan``) and compass heading."""
    route = plan(trip, here)
    store_at = LatLng(trip.store_lat, trip.store_lng)
    found: list[Stop] = []
    cursor = store_at if trip.status == "PICKED_UP" else here  # as ``plan`` rides it
    if route.store is not None:
        way = heading(here, store_at) if here is not None and trip.status != "AT_STORE" else None
        found.append(Stop("S", f"store {trip.store_id}", store_at, route.store, way))
        cursor = store_at
    for stop in open_stops(trip):
        drop = LatLng(stop.lat, stop.lng)
        label = stop.address or f"{stop.lat:.5f}, {stop.lng:.5f}"
        if stop.customer_phone:  # before the notes, which the list may cut short
            label += f" · ☎ {masked_phone(stop.customer_phone)}"
        if stop.instructions:
            label += f" · {stop.instructions}"
        way = heading(cursor, drop) if cursor is not None else None
        found.append(Stop(str(stop.seq), label, drop, route.drops[str(stop.order_id)], way))
        cursor = drop
    return found
