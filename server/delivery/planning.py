"""Rider assignment, order batching and ETA estimation.

Pure functions: no I/O and no clock reads; every time is passed in as seconds on one
caller-chosen epoch (e.g. ``datetime.timestamp()``). Distances are metres.
"""

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from shared.geo import EARTH_RADIUS_M, LatLng, angle_diff_deg, bearing_deg, haversine_m

RIDER_IDLE = "IDLE"
RIDER_DELIVERING = "DELIVERING"

ROAD_FACTOR = 1.35
# ~18 km/h: a typical two-wheeler average through city traffic, stops included.
BASE_SPEED_MPS = 5.0
HANDOVER_S = 60.0

# A recent-speed average needs this many GPS samples before it may move the ETA.
MIN_RECENT_SAMPLES = 5
# Below this the rider is stopped (signal, handover), which says nothing about riding speed.
MIN_MOVING_SPEED_MPS = 1.0
# GPS jumps can fake absurd speeds; 60 km/h is the most a city leg is credited with.
MAX_RECENT_SPEED_MPS = 60 / 3.6
RECENT_SPEED_WEIGHT = 0.5
# A route's actual/planned ratio is trusted only within this band, so one outlier can't
# halve or triple every ETA on that route.
HISTORY_FACTOR_MIN = 0.5
HISTORY_FACTOR_MAX = 2.0

# Companions considered per batch seed, nearest drops first: bounds the search to
# C(8, 2) + 8 = 36 groups x 3! routes however many orders are waiting.
MAX_BATCH_CANDIDATES = 8


@dataclass(frozen=True, slots=True)
class RiderCandidate:
    rider_id: str
    position: LatLng
    status: str  # RIDER_IDLE, RIDER_DELIVERING, or anything else (never eligible)
    free_in_s: float  # estimated seconds until a DELIVERING rider is free; ignored when IDLE
    rating: float  # 0..5
    battery_pct: float  # 0..100
    hist_avg_minutes: float | None = None  # average delivery minutes; None for new riders
    # where a DELIVERING rider will be free (their last open drop); None: where they are
    free_at: LatLng | None = None


@dataclass(frozen=True, slots=True)
class WaitingOrder:
    order_id: str
    store_id: str
    store: LatLng
    drop: LatLng
    placed_at_s: float
    ready_at_s: float  # when picking/packing is expected to finish


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    distance: float = 40.0
    rating: float = 20.0
    battery: float = 10.0
    history: float = 30.0
    radius_m: float = 2000.0
    free_within_s: float = 180.0
    sla_s: float = 15 * 60.0

    @property
    def total(self) -> float:
        return self.distance + self.rating + self.battery + self.history


DEFAULT_WEIGHTS = ScoreWeights()


@dataclass(frozen=True, slots=True)
class PlannedStop:
    order_id: str
    drop: LatLng
    arrive_at_s: float
    delivered_at_s: float  # arrival plus handover
    placed_at_s: float


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """One rider trip from the store: a single order or a batch, stops in route order."""

    store_id: str
    depart_at_s: float
    stops: tuple[PlannedStop, ...]
    route_m: float  # straight-line length of the legs, store -> first drop -> ... -> last
    sla_s: float

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(s.order_id for s in self.stops)

    @property
    def is_batch(self) -> bool:
        return len(self.stops) > 1

    @property
    def sla_ok(self) -> bool:
        """False only for a single that is late however it is sent (batches always hold)."""
        return all(s.delivered_at_s - s.placed_at_s <= self.sla_s for s in self.stops)


# --- rider scoring and assignment -------------------------------------------------------


def _status_ok(rider: RiderCandidate, weights: ScoreWeights) -> bool:
    if rider.status == RIDER_IDLE:
        return True
    return rider.status == RIDER_DELIVERING and rider.free_in_s < weights.free_within_s


def is_eligible(
    rider: RiderCandidate, store: LatLng, weights: ScoreWeights = DEFAULT_WEIGHTS
) -> bool:
    """Within ``radius_m`` of the store (inclusive) and IDLE, or DELIVERING and free in under
    ``free_within_s``. Distance uses the rider's current position, not where they will be."""
    return _status_ok(rider, weights) and haversine_m(rider.position, store) <= weights.radius_m


def approach_s(rider: RiderCandidate, store: LatLng) -> float:
    """Seconds until the rider can be at the store: for a DELIVERING rider the rest of
    their trip (``free_in_s``) and the ride from its last drop, else the ride from here."""
    busy = rider.status == RIDER_DELIVERING
    start = rider.free_at if busy and rider.free_at is not None else rider.position
    return (rider.free_in_s if busy else 0.0) + eta_s(haversine_m(start, store))


def _approach_matrix(
    stores: Sequence[LatLng], riders: Sequence[RiderCandidate]
) -> NDArray[np.float64]:
    """``approach_s`` for every (store, rider), shape (len(stores), len(riders))."""
    busy = np.array([r.status == RIDER_DELIVERING for r in riders], dtype=bool)
    starts = [
        r.free_at if r.status == RIDER_DELIVERING and r.free_at is not None else r.position
        for r in riders
    ]
    free_in = np.where(busy, np.array([r.free_in_s for r in riders], dtype=np.float64), 0.0)
    return _distance_matrix(stores, starts) * ROAD_FACTOR / BASE_SPEED_MPS + free_in[None, :]


def neutral_history_minutes(riders: Sequence[RiderCandidate], weights: ScoreWeights) -> float:
    """Minutes credited to riders without history: the median of those who have one.

    A median neither rewards nor punishes newcomers against their actual peers. With no
    history at all it is half the SLA, i.e. half the history weight.
    """
    known = [r.hist_avg_minutes for r in riders if r.hist_avg_minutes is not None]
    return statistics.median(known) if known else weights.sla_s / 60.0 / 2.0


def _unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    # Every term is a 0..1 fraction of its weight: far, slow or odd inputs bottom out at 0.
    return np.clip(x, 0.0, 1.0)


def _rider_terms(
    riders: Sequence[RiderCandidate], weights: ScoreWeights, neutral_minutes: float
) -> NDArray[np.float64]:
    """The pair-independent part of the score (rating, battery, history) per rider."""
    rating = np.array([r.rating for r in riders], dtype=np.float64)
    battery = np.array([r.battery_pct for r in riders], dtype=np.float64)
    hist = np.array(
        [neutral_minutes if r.hist_avg_minutes is None else r.hist_avg_minutes for r in riders],
        dtype=np.float64,
    )
    return (
        weights.rating * _unit(rating / 5.0)
        + weights.battery * _unit(battery / 100.0)
        + weights.history * _unit(1.0 - hist / (weights.sla_s / 60.0))
    )


def _distance_term(dist_m: NDArray[np.float64], weights: ScoreWeights) -> NDArray[np.float64]:
    return weights.distance * _unit(1.0 - dist_m / weights.radius_m)


def rider_score(
    rider: RiderCandidate,
    store: LatLng,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    *,
    neutral_minutes: float | None = None,
) -> float:
    """Seed score, 0..``weights.total``: (1 - d/2000)*40 + (rating/5)*20 + (battery/100)*10
    + (1 - avg_minutes/15)*30, each term clamped to [0, its weight]. Eligibility is separate.

    ``d`` is the distance to the store; for a DELIVERING rider the distance they could ride
    in their ``approach_s`` (the rest of their trip, then from its last drop to the store),
    so a rider free in a minute next door beats an idle one across the radius.
    ``neutral_minutes`` stands in for a missing history (see ``neutral_history_minutes``);
    without it a new rider gets half the history weight.
    """
    neutral = weights.sla_s / 60.0 / 2.0 if neutral_minutes is None else neutral_minutes
    dist = np.array([approach_s(rider, store) * BASE_SPEED_MPS / ROAD_FACTOR])
    return float((_distance_term(dist, weights) + _rider_terms([rider], weights, neutral))[0])


def _distance_matrix(a: Sequence[LatLng], b: Sequence[LatLng]) -> NDArray[np.float64]:
    """Haversine distances, shape (len(a), len(b)); same formula as ``shared.geo``."""
    lat1 = np.radians(np.array([p.lat for p in a]))[:, None]
    lng1 = np.radians(np.array([p.lng for p in a]))[:, None]
    lat2 = np.radians(np.array([p.lat for p in b]))[None, :]
    lng2 = np.radians(np.array([p.lng for p in b]))[None, :]
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))


def assign(
    orders: Sequence[WaitingOrder],
    riders: Sequence[RiderCandidate],
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> list[tuple[str, str]]:
    """Assign waiting orders to riders together, as ``(order_id, rider_id)`` pairs in order
    input order. Orders with no eligible rider are left out; an ineligible pair is never made.

    Among all matchings of eligible pairs it first maximises how many orders get a rider,
    then the total score: an order left waiting costs SLA minutes, which outweighs a better
    score for someone else. ``orders`` may be batches (one entry per trip; only ``store``
    and ``ready_at_s`` are used). Riders without history score with the median of
    ``riders`` (the fleet passed in).

    A pair's score depends on the order only through its store, so orders of one store are
    interchangeable: they are solved as one group (the best riders by score, the nearest of
    them to the orders ready first), which is what the dispatcher (one store per run) asks.
    Orders of several stores go to the Hungarian algorithm over, per store, only its best
    ``len(orders)`` eligible riders (a rider outside that set can always be swapped for a
    free one inside it, so the optimum is unchanged).
    """
    if not orders or not riders:
        return []
    group_of: dict[LatLng, int] = {}
    groups = np.array([group_of.setdefault(o.store, len(group_of)) for o in orders])
    points = list(group_of)
    positions = [r.position for r in riders]
    status_ok = np.array([_status_ok(r, weights) for r in riders], dtype=bool)
    eligible = (_distance_matrix(points, positions) <= weights.radius_m) & status_ok[None, :]
    approach = _approach_matrix(points, riders)
    neutral = neutral_history_minutes(riders, weights)
    score = (
        _distance_term(approach * BASE_SPEED_MPS / ROAD_FACTOR, weights)
        + _rider_terms(riders, weights, neutral)[None, :]
    )
    if len(points) == 1:
        return _assign_one_store(orders, riders, eligible[0], score[0], approach[0])
    n = len(orders)
    # per store its best n eligible riders (by score, then input order)
    keep = np.zeros(len(riders), dtype=bool)
    for g in range(len(points)):
        idx = np.flatnonzero(eligible[g])
        if idx.size > n:
            idx = idx[np.argsort(-score[g, idx], kind="stable")[:n]]
        keep[idx] = True
    cols = np.flatnonzero(keep)
    if cols.size == 0:
        return []
    sub_eligible = eligible[np.ix_(groups, cols)]
    rows = np.flatnonzero(sub_eligible.any(axis=1))
    sub_eligible = sub_eligible[rows]
    sub_score = score[np.ix_(groups[rows], cols)]
    # A per-pair bonus above any matching's total score makes one more assignment always
    # worth more than any score gain; ineligible cells get 0 and are dropped afterwards.
    bonus = weights.total * min(rows.size, cols.size) + 1.0
    profit = np.where(sub_eligible, sub_score + bonus, 0.0)
    r_idx, c_idx = linear_sum_assignment(profit, maximize=True)
    ok = sub_eligible[r_idx, c_idx]
    return [
        (orders[rows[i]].order_id, riders[cols[j]].rider_id)
        for i, j in zip(r_idx[ok], c_idx[ok], strict=True)
    ]


def _assign_one_store(
    orders: Sequence[WaitingOrder],
    riders: Sequence[RiderCandidate],
    eligible: NDArray[np.bool_],
    score: NDArray[np.float64],
    approach: NDArray[np.float64],
) -> list[tuple[str, str]]:
    """Every order scores alike: the ``k`` best eligible riders take the ``k`` orders ready
    first, the rider who can be there soonest on the order ready soonest."""
    idx = np.flatnonzero(eligible)
    k = min(len(orders), idx.size)
    if k == 0:
        return []
    best = idx[np.argsort(-score[idx], kind="stable")[:k]]
    best = best[np.argsort(approach[best], kind="stable")]
    first = sorted(
        range(len(orders)), key=lambda i: (orders[i].ready_at_s, orders[i].placed_at_s, i)
    )[:k]
    pairs = dict(zip(first, best.tolist(), strict=True))
    return [(orders[i].order_id, riders[pairs[i]].rider_id) for i in sorted(pairs)]


# --- ETA ----------------------------------------------------------------------------------


def effective_speed_mps(
    base_speed_mps: float = BASE_SPEED_MPS,
    recent_speed_mps: float | None = None,
    *,
    recent_samples: int | None = None,
) -> float:
    """Base speed blended half-and-half with the rider's recent moving speed.

    The recent speed is ignored when missing, backed by fewer than ``MIN_RECENT_SAMPLES``
    samples (``None`` means the caller already vetted it), or below ``MIN_MOVING_SPEED_MPS``
    (a rider waiting at a light is not slow, just stopped). It is capped at
    ``MAX_RECENT_SPEED_MPS`` against GPS jumps.
    """
    if base_speed_mps <= 0:
        raise ValueError("base_speed_mps must be positive")
    if (
        recent_speed_mps is None
        or (recent_samples is not None and recent_samples < MIN_RECENT_SAMPLES)
        or recent_speed_mps < MIN_MOVING_SPEED_MPS
    ):
        return base_speed_mps
    recent = min(recent_speed_mps, MAX_RECENT_SPEED_MPS)
    return (1 - RECENT_SPEED_WEIGHT) * base_speed_mps + RECENT_SPEED_WEIGHT * recent


def eta_s(
    distance_m: float,
    road_factor: float = ROAD_FACTOR,
    base_speed_mps: float = BASE_SPEED_MPS,
    recent_speed_mps: float | None = None,
    history_factor: float | None = None,
    *,
    recent_samples: int | None = None,
) -> float:
    """Seconds to ride ``distance_m`` (straight line): distance x road factor / speed, then
    x the route's actual/planned history factor (clamped to [0.5, 2]; ignored if None or <= 0).

    See ``effective_speed_mps`` for how the recent speed is used.
    """
    if distance_m < 0:
        raise ValueError("distance_m must be non-negative")
    speed = effective_speed_mps(base_speed_mps, recent_speed_mps, recent_samples=recent_samples)
    seconds = distance_m * road_factor / speed
    if history_factor is not None and history_factor > 0:
        seconds *= min(HISTORY_FACTOR_MAX, max(HISTORY_FACTOR_MIN, history_factor))
    return seconds


def route_etas(
    start: LatLng,
    stops: Sequence[LatLng],
    road_factor: float = ROAD_FACTOR,
    base_speed_mps: float = BASE_SPEED_MPS,
    recent_speed_mps: float | None = None,
    history_factor: float | None = None,
    *,
    recent_samples: int | None = None,
    dwell_s: float = 0.0,
) -> list[float]:
    """Cumulative seconds from ``start`` to arriving at each stop, visiting them in order and
    spending ``dwell_s`` (handover) at every stop before moving on."""
    etas: list[float] = []
    elapsed = 0.0
    here = start
    for stop in stops:
        elapsed += eta_s(
            haversine_m(here, stop),
            road_factor,
            base_speed_mps,
            recent_speed_mps,
            history_factor,
            recent_samples=recent_samples,
        )
        etas.append(elapsed)
        elapsed += dwell_s
        here = stop
    return etas


# --- batching -----------------------------------------------------------------------------


def bearing_spread_deg(bearings: Sequence[float]) -> float:
    """Width of the smallest arc holding every bearing (360 minus the widest gap)."""
    if len(bearings) < 2:
        return 0.0
    ordered = sorted(b % 360.0 for b in bearings)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    gaps.append(ordered[0] + 360.0 - ordered[-1])
    return 360.0 - max(gaps)


@dataclass(frozen=True, slots=True)
class _TripParams:
    now_s: float
    speed_mps: float
    road_factor: float
    sla_s: float
    handover_s: float


def _trip(route: Sequence[WaitingOrder], p: _TripParams) -> PlannedBatch:
    """Plan a fixed route; the rider leaves once every order on it is ready."""
    store = route[0].store
    drops = [o.drop for o in route]
    depart = max(p.now_s, *(o.ready_at_s for o in route))
    offsets = route_etas(store, drops, p.road_factor, p.speed_mps, dwell_s=p.handover_s)
    stops = tuple(
        PlannedStop(
            order_id=o.order_id,
            drop=o.drop,
            arrive_at_s=depart + t,
            delivered_at_s=depart + t + p.handover_s,
            placed_at_s=o.placed_at_s,
        )
        for o, t in zip(route, offsets, strict=True)
    )
    route_m = sum(haversine_m(a, b) for a, b in itertools.pairwise([store, *drops]))
    return PlannedBatch(route[0].store_id, depart, stops, route_m, p.sla_s)


def _shortest_feasible(group: Sequence[WaitingOrder], p: _TripParams) -> PlannedBatch | None:
    """Shortest of the len(group)! routes that keeps every order within SLA, or None.

    Permutations come in lexicographic order of ``group`` and only a strictly shorter route
    replaces the best, so ties resolve deterministically.
    """
    best: PlannedBatch | None = None
    for route in itertools.permutations(group):
        trip = _trip(route, p)
        if trip.sla_ok and (best is None or trip.route_m < best.route_m):
            best = trip
    return best


def _best_group(
    seed: WaitingOrder,
    companions: Sequence[WaitingOrder],
    bearing: dict[str, float],
    max_batch: int,
    max_spread: float,
    p: _TripParams,
) -> PlannedBatch:
    for size in range(min(max_batch, len(companions) + 1), 1, -1):
        best: PlannedBatch | None = None
        for extra in itertools.combinations(companions, size - 1):
            group = sorted([seed, *extra], key=lambda o: o.order_id)
            if bearing_spread_deg([bearing[o.order_id] for o in group]) > max_spread:
                continue
            trip = _shortest_feasible(group, p)
            if trip is not None and (
                best is None or (trip.route_m, trip.order_ids) < (best.route_m, best.order_ids)
            ):
                best = trip
        if best is not None:
            return best
    return _trip([seed], p)


def plan_batches(
    orders: Sequence[WaitingOrder],
    now_s: float,
    speed_mps: float = BASE_SPEED_MPS,
    road_factor: float = ROAD_FACTOR,
    sla_s: float = 15 * 60.0,
    max_batch: int = 3,
    max_bearing_spread_deg: float = 35.0,
    handover_s: float = HANDOVER_S,
) -> list[PlannedBatch]:
    """Group one store's waiting orders into rider trips; every order lands in exactly one.

    Oldest order first (ties by id), each order seeds a group with up to ``max_batch - 1``
    still-ungrouped companions whose drops, seen from the store, span at most
    ``max_bearing_spread_deg``. A group is accepted only if some route delivers EVERY order
    in it within ``sla_s`` of its placement: wait until all are ready (not before ``now_s``)
    + travel along the route + ``handover_s`` per drop. Bigger groups win, then the shorter
    route; an order with no feasible group goes alone (possibly late: see
    ``PlannedBatch.sla_ok``). Trips come out in seed order. ``now_s`` is the earliest time a
    rider can leave the store: pass the assigned rider's arrival there to count the approach.
    """
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    if speed_mps <= 0:
        raise ValueError("speed_mps must be positive")
    if len({(o.store_id, o.store) for o in orders}) > 1:
        raise ValueError("plan_batches takes the orders of one store")

    params = _TripParams(now_s, speed_mps, road_factor, sla_s, handover_s)
    pending = sorted(orders, key=lambda o: (o.placed_at_s, o.order_id))
    bearing = {o.order_id: bearing_deg(o.store, o.drop) for o in pending}
    grouped: set[str] = set()
    trips: list[PlannedBatch] = []
    for seed in pending:
        if seed.order_id in grouped:
            continue
        companions = sorted(
            (
                o
                for o in pending
                if o.order_id not in grouped
                and o.order_id != seed.order_id
                and angle_diff_deg(bearing[o.order_id], bearing[seed.order_id])
                <= max_bearing_spread_deg
            ),
            key=lambda o: (haversine_m(seed.drop, o.drop), o.order_id),
        )[:MAX_BATCH_CANDIDATES]
        trip = _best_group(seed, companions, bearing, max_batch, max_bearing_spread_deg, params)
        grouped.update(trip.order_ids)
        trips.append(trip)
    return trips
