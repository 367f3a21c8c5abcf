from typing import TypedDict

import numpy as np
import pytest

from server.delivery.planning import (
    DEFAULT_WEIGHTS,
    RIDER_DELIVERING,
    RIDER_IDLE,
    PlannedBatch,
    RiderCandidate,
    ScoreWeights,
    WaitingOrder,
    assign,
    bearing_spread_deg,
    effective_speed_mps,
    eta_s,
    is_eligible,
    neutral_history_minutes,
    plan_batches,
    rider_score,
    route_etas,
)
from shared.geo import LatLng, destination

STORE = LatLng(12.9716, 77.5946)


def rider(
    rider_id: str,
    position: LatLng,
    *,
    status: str = RIDER_IDLE,
    free_in_s: float = 0.0,
    rating: float = 5.0,
    battery_pct: float = 100.0,
    hist_avg_minutes: float | None = 7.5,
) -> RiderCandidate:
    return RiderCandidate(
        rider_id, position, status, free_in_s, rating, battery_pct, hist_avg_minutes
    )


def order(
    order_id: str,
    drop: LatLng,
    *,
    store: LatLng = STORE,
    store_id: str = "s1",
    placed_at_s: float = 0.0,
    ready_at_s: float = 0.0,
) -> WaitingOrder:
    return WaitingOrder(order_id, store_id, store, drop, placed_at_s, ready_at_s)


# --- scoring ------------------------------------------------------------------------------


def test_score_of_a_specific_rider() -> None:
    r = rider("r1", destination(STORE, 45, 500), rating=4.5, battery_pct=80, hist_avg_minutes=12)
    # distance (1 - 500/2000) * 40 = 30
    # rating   (4.5/5) * 20       = 18
    # battery  (80/100) * 10      =  8
    # history  (1 - 12/15) * 30   =  6
    assert rider_score(r, STORE) == pytest.approx(62.0)


def test_rider_without_history_gets_a_neutral_term() -> None:
    r = rider("new", destination(STORE, 45, 500), rating=4.5, battery_pct=80, hist_avg_minutes=None)
    # Default neutral is half the SLA, 7.5 min: (1 - 7.5/15) * 30 = 15 -> 30 + 18 + 8 + 15 = 71.
    assert rider_score(r, STORE) == pytest.approx(71.0)
    # With a fleet median of 10 min: (1 - 10/15) * 30 = 10 -> 30 + 18 + 8 + 10 = 66.
    assert rider_score(r, STORE, neutral_minutes=10) == pytest.approx(66.0)


def test_neutral_history_is_the_fleet_median() -> None:
    fleet = [
        rider("a", STORE, hist_avg_minutes=10),
        rider("b", STORE, hist_avg_minutes=14),
        rider("c", STORE, hist_avg_minutes=None),
        rider("d", STORE, hist_avg_minutes=12),
    ]
    assert neutral_history_minutes(fleet, DEFAULT_WEIGHTS) == 12
    assert (
        neutral_history_minutes([rider("c", STORE, hist_avg_minutes=None)], DEFAULT_WEIGHTS) == 7.5
    )


def test_score_terms_are_clamped() -> None:
    r = rider("slow", destination(STORE, 0, 2500), rating=6, battery_pct=120, hist_avg_minutes=20)
    # distance 1 - 2500/2000 < 0 -> 0; rating 6/5 > 1 -> 20; battery -> 10; history 1 - 20/15 -> 0.
    assert rider_score(r, STORE) == pytest.approx(30.0)


# --- eligibility --------------------------------------------------------------------------


@pytest.mark.parametrize(("distance_m", "eligible"), [(1999, True), (2001, False)])
def test_eligibility_radius(distance_m: float, eligible: bool) -> None:
    assert is_eligible(rider("r", destination(STORE, 200, distance_m)), STORE) is eligible


@pytest.mark.parametrize(
    ("status", "free_in_s", "eligible"),
    [
        (RIDER_IDLE, 0, True),
        (RIDER_IDLE, 999, True),  # free_in_s means nothing for an idle rider
        (RIDER_DELIVERING, 179, True),
        (RIDER_DELIVERING, 180, False),  # "free in under 3 min" is strict
        (RIDER_DELIVERING, 181, False),
        ("OFFLINE", 0, False),
        ("RETURNING", 0, False),
    ],
)
def test_eligibility_status(status: str, free_in_s: float, eligible: bool) -> None:
    r = rider("r", destination(STORE, 0, 300), status=status, free_in_s=free_in_s)
    assert is_eligible(r, STORE) is eligible


def test_eligibility_follows_the_weights() -> None:
    r = rider("r", destination(STORE, 0, 2500), status=RIDER_DELIVERING, free_in_s=200)
    assert is_eligible(r, STORE, ScoreWeights(radius_m=3000, free_within_s=240))


# --- assignment ---------------------------------------------------------------------------


def test_matching_beats_greedy() -> None:
    s2 = destination(STORE, 90, 1000)
    o1, o2 = order("o1", STORE, store=STORE), order("o2", s2, store=s2, store_id="s2")
    r1 = rider("r1", destination(STORE, 90, 100))  # 100 m from s1, 900 m from s2
    r2 = rider("r2", destination(STORE, 270, 900))  # 900 m from s1, 1,900 m from s2
    # Both riders: 5 stars, 100 %, 7.5 min -> 20 + 10 + 15 = 45 besides distance.
    # o1-r1: (1 - 100/2000) * 40 + 45 = 38 + 45 = 83   <- the single best pair
    # o1-r2: (1 - 900/2000) * 40 + 45 = 22 + 45 = 67
    # o2-r1: (1 - 900/2000) * 40 + 45 = 22 + 45 = 67
    # o2-r2: (1 - 1900/2000) * 40 + 45 = 2 + 45 = 47
    # Greedy takes o1-r1 then o2-r2: 83 + 47 = 130. Optimal o1-r2 + o2-r1: 67 + 67 = 134.
    assert rider_score(r1, STORE) == pytest.approx(83)
    assert rider_score(r2, s2) == pytest.approx(47)
    assert rider_score(r2, STORE) + rider_score(r1, s2) == pytest.approx(134)
    assert assign([o1, o2], [r1, r2]) == [("o1", "r2"), ("o2", "r1")]


def test_matching_serves_the_order_greedy_would_strand() -> None:
    s2 = destination(STORE, 90, 3000)
    o1, o2 = order("o1", STORE), order("o2", s2, store=s2, store_id="s2")
    r1 = rider("r1", destination(STORE, 90, 1200))  # 1,200 m from s1, 1,800 m from s2
    r2 = rider("r2", destination(STORE, 270, 400), rating=2.5, battery_pct=50, hist_avg_minutes=12)
    # r1 extras 20 + 10 + 15 = 45; r2 extras 10 + 5 + 6 = 21; r2 is 3,400 m from s2 (ineligible).
    # o1-r1: 16 + 45 = 61 (best pair); o1-r2: 32 + 21 = 53; o2-r1: 4 + 45 = 49.
    # Greedy: o1-r1 and o2 waits (61, one order). Optimal: o1-r2 + o2-r1 = 102, both served.
    assert assign([o1, o2], [r1, r2]) == [("o1", "r2"), ("o2", "r1")]


def test_assignment_count_comes_before_score() -> None:
    s2 = destination(STORE, 0, 1990)
    o1, o2 = order("o1", STORE), order("o2", s2, store=s2, store_id="s2")
    r1 = rider("r1", STORE)  # at s1, 1,990 m from s2
    r2 = rider(
        "r2", destination(STORE, 180, 1990), rating=0, battery_pct=5, hist_avg_minutes=20
    )  # 1,990 m from s1, 3,980 m from s2 (ineligible)
    # o1-r1: 40 + 45 = 85; o1-r2: 0.2 + 0.5 = 0.7; o2-r1: 0.2 + 45 = 45.2.
    # Pure max weight keeps o1-r1 (85 > 45.9) and strands o2; we serve both.
    assert assign([o1, o2], [r1, r2]) == [("o1", "r2"), ("o2", "r1")]


def test_ineligible_riders_are_never_assigned() -> None:
    orders = [order(f"o{i}", STORE) for i in range(3)]
    riders = [
        rider("far", destination(STORE, 0, 2500)),
        rider("busy", STORE, status=RIDER_DELIVERING, free_in_s=600),
        rider("off", STORE, status="OFFLINE"),
        rider("ok", destination(STORE, 0, 800)),
    ]
    # Three orders, four riders, one eligible: one pair, the rest wait.
    assert assign(orders, riders) == [("o0", "ok")]
    assert assign(orders, riders[:3]) == []
    assert assign([], riders) == []
    assert assign(orders, []) == []


def test_more_orders_than_riders_picks_the_best_orders() -> None:
    far_store = destination(STORE, 0, 1500)
    near, far = order("near", STORE), order("far", STORE, store=far_store, store_id="s2")
    r = rider("r", destination(STORE, 0, 100))
    # r is 100 m from s1 (38 + 45) and 1,400 m from s2 (12 + 45): it takes the s1 order.
    assert assign([far, near], [r]) == [("near", "r")]


def test_assign_scales_to_500_orders_and_2000_riders() -> None:
    rng = np.random.default_rng(7)
    stores = [destination(STORE, rng.uniform(0, 360), rng.uniform(0, 6000)) for _ in range(25)]
    orders = [
        order(f"o{i}", STORE, store=stores[i % 25], store_id=f"s{i % 25}") for i in range(500)
    ]
    statuses = [RIDER_IDLE, RIDER_DELIVERING, "OFFLINE"]
    riders = [
        rider(
            f"r{i}",
            destination(STORE, rng.uniform(0, 360), rng.uniform(0, 8000)),
            status=statuses[i % 3],
            free_in_s=rng.uniform(0, 400),
            rating=rng.uniform(3, 5),
            battery_pct=rng.uniform(10, 100),
            hist_avg_minutes=None if i % 7 == 0 else rng.uniform(8, 16),
        )
        for i in range(2000)
    ]
    # how fast is `qc bench dispatch`'s business (a timed test fails on a loaded machine)
    pairs = assign(orders, riders)
    assert len({o for o, _ in pairs}) == len({r for _, r in pairs}) == len(pairs) > 400
    by_id = {r.rider_id: r for r in riders}
    stores_by_order = {o.order_id: o.store for o in orders}
    assert all(is_eligible(by_id[r], stores_by_order[o]) for o, r in pairs)


# --- ETA ----------------------------------------------------------------------------------


def test_eta_base() -> None:
    # 1000 m * 1.35 / 5 m/s = 270 s
    assert eta_s(1000) == pytest.approx(270)
    assert eta_s(1000, road_factor=1.0, base_speed_mps=4.0) == pytest.approx(250)
    assert eta_s(0) == 0


def test_eta_recent_speed_blend() -> None:
    # Blend half and half: (5 + 7) / 2 = 6 m/s -> 1350 / 6 = 225 s
    assert eta_s(1000, recent_speed_mps=7, recent_samples=10) == pytest.approx(225)
    assert eta_s(1000, recent_speed_mps=7) == pytest.approx(225)  # caller vetted the average
    # Too few samples, or stopped at a light: base speed only.
    assert eta_s(1000, recent_speed_mps=7, recent_samples=4) == pytest.approx(270)
    assert eta_s(1000, recent_speed_mps=0.4, recent_samples=30) == pytest.approx(270)
    # A GPS jump to 40 m/s is capped at 60 km/h = 50/3 m/s: (5 + 50/3) / 2 = 65/6 m/s,
    # 1350 / (65/6) = 8100 / 65 = 124.615 s
    assert eta_s(1000, recent_speed_mps=40, recent_samples=10) == pytest.approx(8100 / 65)
    assert effective_speed_mps(5, 7, recent_samples=5) == pytest.approx(6)


def test_eta_history_factor() -> None:
    assert eta_s(1000, history_factor=1.2) == pytest.approx(324)  # 270 * 1.2
    assert eta_s(1000, history_factor=3.0) == pytest.approx(540)  # clamped to 2
    assert eta_s(1000, history_factor=0.1) == pytest.approx(135)  # clamped to 0.5
    assert eta_s(1000, history_factor=0.0) == pytest.approx(270)  # no usable history
    # Both corrections: 225 * 1.2 = 270
    assert eta_s(1000, recent_speed_mps=7, history_factor=1.2) == pytest.approx(270)


def test_eta_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        eta_s(-1)
    with pytest.raises(ValueError):
        eta_s(100, base_speed_mps=0)


def test_route_etas_are_cumulative_with_dwell() -> None:
    stops = [destination(STORE, 0, 1000), destination(STORE, 0, 1500)]
    # 1000 * 1.35 / 5 = 270; then 60 s handover and 500 * 1.35 / 5 = 135 -> 465
    assert route_etas(STORE, stops, dwell_s=60) == pytest.approx([270, 465])
    assert route_etas(STORE, []) == []


# --- batching -----------------------------------------------------------------------------
# All batching cases ride at 5 m/s with road factor 1 (so 1 m = 0.2 s), 60 s handover, 900 s SLA.
class Ride(TypedDict):
    speed_mps: float
    road_factor: float
    handover_s: float
    sla_s: float


RIDE = Ride(speed_mps=5.0, road_factor=1.0, handover_s=60.0, sla_s=900.0)


def north(distance_m: float) -> LatLng:
    return destination(STORE, 0, distance_m)


def shape(trips: list[PlannedBatch]) -> list[tuple[str, ...]]:
    return [t.order_ids for t in trips]


def test_batch_accepted_same_direction_within_sla() -> None:
    a = order("a", north(1000), ready_at_s=120)
    b = order("b", north(1500), ready_at_s=120)
    c = order("c", north(2000), ready_at_s=120)
    [trip] = plan_batches([c, a, b], now_s=100, **RIDE)
    # Leave when all are ready (120). a: 1000 m = 200 s -> 320, +60 -> 380
    # b: +500 m = 100 s -> 480, +60 -> 540; c: +100 s -> 640, +60 -> 700 <= 900.
    assert trip.order_ids == ("a", "b", "c")
    assert trip.is_batch and trip.sla_ok
    assert trip.depart_at_s == 120
    assert trip.route_m == pytest.approx(2000)
    assert [s.arrive_at_s for s in trip.stops] == pytest.approx([320, 480, 640])
    assert [s.delivered_at_s for s in trip.stops] == pytest.approx([380, 540, 700])


def test_batch_refused_when_an_order_would_breach_sla() -> None:
    old = order("old", north(2000), placed_at_s=-400)
    new = order("new", north(1000), placed_at_s=-200)
    # Alone: old delivered 400 + 60 = 460 (860 s after placing), new 200 + 60 = 260 (460 s).
    # new first: old arrives 260 + 200 = 460, delivered 520 -> 920 s > 900.
    # old first: new arrives 460 + 200 = 660, delivered 720 -> 920 s > 900.
    trips = plan_batches([new, old], now_s=0, **RIDE)
    assert shape(trips) == [("old",), ("new",)]
    assert [t.stops[0].delivered_at_s for t in trips] == pytest.approx([460, 260])
    assert all(t.sla_ok and not t.is_batch for t in trips)


def test_batch_takes_the_shortest_route_that_keeps_the_sla() -> None:
    old = order("old", north(2000), placed_at_s=-400)
    new = order("new", north(1000), placed_at_s=0)
    # new first is shorter (2,000 m) but old is delivered at 520 -> 920 s > 900.
    # old first (3,000 m): old 400 + 60 = 460 (860 s), new 460 + 200 = 660 + 60 = 720 (720 s).
    [trip] = plan_batches([new, old], now_s=0, **RIDE)
    assert trip.order_ids == ("old", "new")
    assert trip.route_m == pytest.approx(3000)
    assert [s.arrive_at_s for s in trip.stops] == pytest.approx([400, 660])
    assert [s.delivered_at_s for s in trip.stops] == pytest.approx([460, 720])


def test_batch_refused_for_direction() -> None:
    a = order("a", destination(STORE, 0, 1000))
    b = order("b", destination(STORE, 90, 1000))
    # a then b would land b at 200 + 60 + 1414 / 5 = 543 s: within SLA, but 90 deg apart.
    assert shape(plan_batches([a, b], now_s=0, **RIDE)) == [("a",), ("b",)]


def test_batch_direction_wraps_through_north() -> None:
    a = order("a", destination(STORE, 350, 1000))
    b = order("b", destination(STORE, 10, 1200))
    # 350 and 10 deg are 20 deg apart; the nearer drop goes first.
    assert shape(plan_batches([b, a], now_s=0, **RIDE)) == [("a", "b")]


def test_batch_spread_is_checked_for_the_whole_group() -> None:
    seed = order("seed", destination(STORE, 0, 1000), placed_at_s=-10)
    x = order("x", destination(STORE, 330, 1100), placed_at_s=0)
    y = order("y", destination(STORE, 30, 1200), placed_at_s=-5)
    # x and y are each 30 deg from seed but 60 deg from each other: pairs only.
    # seed-x: |seed x|^2 = 1000^2 + 1100^2 - 2*1000*1100*cos 30 -> 552 m, route 1,552 m;
    # seed-y: 1000^2 + 1200^2 - 2*1000*1200*cos 30 -> 601 m, route 1,601 m. seed-x wins.
    trips = plan_batches([x, y, seed], now_s=0, **RIDE)
    assert shape(trips) == [("seed", "x"), ("y",)]
    assert trips[0].route_m == pytest.approx(1552, abs=1)


def test_batch_size_is_capped() -> None:
    orders = [order(f"o{i}", north(1000 + 100 * i), placed_at_s=-30 + 10 * i) for i in range(4)]
    # o0 seeds; {o0, o1, o2} is the shortest three-stop route (1,200 m); o3 rides alone.
    trips = plan_batches(orders, now_s=0, **RIDE)
    assert shape(trips) == [("o0", "o1", "o2"), ("o3",)]
    assert shape(plan_batches(orders, now_s=0, max_batch=1, **RIDE)) == [
        ("o0",),
        ("o1",),
        ("o2",),
        ("o3",),
    ]


def test_late_single_is_flagged() -> None:
    stale = order("stale", north(1000), placed_at_s=-900)
    [trip] = plan_batches([stale], now_s=0, **RIDE)
    assert trip.order_ids == ("stale",)
    assert not trip.sla_ok


def test_batching_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    orders = [
        order(
            f"o{i:02d}",
            destination(STORE, rng.uniform(0, 360), rng.uniform(300, 2500)),
            placed_at_s=float(rng.integers(-300, 0)),
            ready_at_s=float(rng.integers(0, 200)),
        )
        for i in range(40)
    ]
    first = plan_batches(orders, now_s=0)
    assert plan_batches(list(reversed(orders)), now_s=0) == first
    assert sorted(o for t in first for o in t.order_ids) == sorted(o.order_id for o in orders)
    assert all(len(t.stops) <= 3 and (t.sla_ok or not t.is_batch) for t in first)


def test_plan_batches_takes_one_store() -> None:
    other = destination(STORE, 0, 5000)
    with pytest.raises(ValueError, match="one store"):
        plan_batches([order("a", north(100)), order("b", north(100), store=other)], now_s=0)


def test_bearing_spread() -> None:
    assert bearing_spread_deg([]) == 0
    assert bearing_spread_deg([123]) == 0
    assert bearing_spread_deg([350, 10]) == pytest.approx(20)
    assert bearing_spread_deg([0, 30, 330]) == pytest.approx(60)
    assert bearing_spread_deg([0, 120, 240]) == pytest.approx(240)
