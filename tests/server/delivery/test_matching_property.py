"""The fast matching is exact: on random fleets and stores it serves as many orders and
reaches the same total score as one Hungarian solve over every order x every rider."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from server.delivery import planning
from shared.geo import LatLng, destination

HUB = LatLng(12.9352, 77.6245)
W = planning.DEFAULT_WEIGHTS

stores = st.lists(st.tuples(st.floats(0, 360), st.floats(0, 3000)), min_size=1, max_size=3).map(
    lambda xs: [destination(HUB, b, d) for b, d in xs]
)


@st.composite
def instances(draw):
    spots = draw(stores)
    n_orders = draw(st.integers(1, 8))
    orders = [
        planning.WaitingOrder(
            f"o{i}",
            f"s{k}",
            spots[k],
            spots[k],
            0.0,
            draw(st.floats(0, 600)),
        )
        for i, k in enumerate(
            draw(st.lists(st.integers(0, len(spots) - 1), min_size=n_orders, max_size=n_orders))
        )
    ]
    riders = [
        planning.RiderCandidate(
            f"r{j}",
            destination(HUB, draw(st.floats(0, 360)), draw(st.floats(0, 4000))),
            draw(st.sampled_from([planning.RIDER_IDLE, planning.RIDER_DELIVERING, "OFFLINE"])),
            draw(st.floats(0, 300)),
            draw(st.floats(0, 5)),
            draw(st.floats(0, 100)),
            draw(st.one_of(st.none(), st.floats(5, 20))),
            destination(HUB, draw(st.floats(0, 360)), draw(st.floats(0, 3000))),
        )
        for j in range(draw(st.integers(0, 12)))
    ]
    return orders, riders


def _score(order: planning.WaitingOrder, rider: planning.RiderCandidate, neutral: float) -> float:
    return planning.rider_score(rider, order.store, W, neutral_minutes=neutral)


@settings(max_examples=150, deadline=None)
@given(instances())
def test_fast_matching_equals_a_full_hungarian_solve(case) -> None:
    orders, riders = case
    pairs = planning.assign(orders, riders, W)
    by_order = {o.order_id: o for o in orders}
    by_rider = {r.rider_id: r for r in riders}
    assert len({o for o, _ in pairs}) == len({r for _, r in pairs}) == len(pairs)
    assert all(planning.is_eligible(by_rider[r], by_order[o].store, W) for o, r in pairs)
    if not riders:
        assert pairs == []
        return
    neutral = planning.neutral_history_minutes(riders, W)
    eligible = np.array(
        [[planning.is_eligible(r, o.store, W) for r in riders] for o in orders], dtype=bool
    )
    score = np.array([[_score(o, r, neutral) for r in riders] for o in orders])
    bonus = W.total * len(orders) + 1.0
    rows, cols = linear_sum_assignment(np.where(eligible, score + bonus, 0.0), maximize=True)
    best = [(i, j) for i, j in zip(rows, cols, strict=True) if eligible[i, j]]
    assert len(pairs) == len(best)
    total = sum(_score(by_order[o], by_rider[r], neutral) for o, r in pairs)
    assert abs(total - sum(score[i, j] for i, j in best)) < 1e-6
