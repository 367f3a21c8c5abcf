"""SLA prediction and store risk (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.ops import sla
from shared.enums import OrderStatus
from shared.geo import LatLng, destination

STORE = LatLng(12.9352, 77.6245)
NEAR = destination(STORE, 45, 1000)


def order(status: str, *, deadline_in: float = 900, **kw) -> sla.OrderProgress:
    return sla.OrderProgress(
        status=status, store=STORE, drop=NEAR, sla_deadline_s=1000 + deadline_in, **kw
    )


def test_each_stage_adds_what_is_left_of_it() -> None:
    ride = sla.ride_s(STORE, NEAR)
    assert 60 < ride < 600
    waiting = sla.remaining_s(order(OrderStatus.CONFIRMED), now_s=1000, queue_ahead_s=300)
    assert waiting == pytest.approx(300 + sla.DEFAULT_PICK_S + ride)
    # a rider is found while the order is picked: a quick pick still waits for them
    quick = order(OrderStatus.CONFIRMED, pick_estimate_s=30)
    assert sla.remaining_s(quick, now_s=1000) == pytest.approx(sla.RIDER_WAIT_S + ride)
    picking = order(OrderStatus.PICKING, pick_estimate_s=240, pick_started_s=900)
    assert sla.remaining_s(picking, now_s=1000) == pytest.approx(140 + ride)
    late_pick = order(OrderStatus.PICKING, pick_estimate_s=60, pick_started_s=0)
    assert sla.remaining_s(late_pick, now_s=1000) == pytest.approx(sla.RIDER_WAIT_S + ride)
    packed = order(OrderStatus.PACKED, has_rider=True)
    assert sla.remaining_s(packed, now_s=1000) == pytest.approx(sla.RIDER_ASSIGNED_WAIT_S + ride)
    on_road = order(OrderStatus.OUT_FOR_DELIVERY, rider_at=NEAR)
    assert sla.remaining_s(on_road, now_s=1000) == pytest.approx(sla.HANDOVER_S)


def test_breach_is_predicted_when_the_remaining_time_passes_the_deadline() -> None:
    assert not sla.breach_predicted(order(OrderStatus.CONFIRMED), now_s=1000)
    assert sla.breach_predicted(order(OrderStatus.CONFIRMED, deadline_in=200), now_s=1000)
    # a long queue ahead pushes a fresh order over
    assert sla.breach_predicted(order(OrderStatus.CONFIRMED), now_s=1000, queue_ahead_s=600)
    assert not sla.breach_predicted(
        sla.OrderProgress(OrderStatus.CONFIRMED, STORE, NEAR, None), now_s=1000
    )


def test_queue_wait_is_shared_by_pickers() -> None:
    assert sla.queue_wait_s(6, pickers=2, mean_pick_s=100) == 300
    assert sla.queue_wait_s(3, pickers=0, mean_pick_s=100) == 300  # somebody will come


def load(**kw) -> sla.StoreLoad:
    base = dict(
        in_store=4,
        predicted_breaches=0,
        oldest_wait_s=60,
        active_pickers=2,
        idle_riders=2,
        is_operational=True,
    )
    return sla.StoreLoad(**(base | kw))


def test_risk_ranks_stores_by_what_threatens_the_sla() -> None:
    calm, breaching = load(), load(predicted_breaches=3)
    assert sla.store_risk(load(in_store=0)) == 0
    assert sla.store_risk(breaching) > sla.store_risk(calm)
    assert sla.store_risk(load(idle_riders=0)) > sla.store_risk(calm)
    assert sla.store_risk(load(oldest_wait_s=800)) > sla.store_risk(calm)
    assert not sla.is_overloaded(calm)
    assert sla.is_overloaded(load(in_store=9))
    assert not sla.is_overloaded(load(in_store=9, is_operational=False))


@given(
    in_store=st.integers(0, 500),
    breaches=st.integers(0, 500),
    age=st.floats(0, 10_000),
    pickers=st.integers(0, 30),
    riders=st.integers(0, 30),
)
def test_risk_stays_between_zero_and_one(in_store, breaches, age, pickers, riders) -> None:
    risk = sla.store_risk(
        load(
            in_store=in_store,
            predicted_breaches=min(breaches, in_store),
            oldest_wait_s=age,
            active_pickers=pickers,
            idle_riders=riders,
        )
    )
    assert 0 <= risk <= 1
