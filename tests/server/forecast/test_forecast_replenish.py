"""The replenishment rule against hand-computed quantities."""

from __future__ import annotations

import pytest

from server.forecast.replenish import Reason, StockPosition, decide, plan


def pos(available: int, in_transit: int, capacity: int, pack: int, cost: int = 0) -> StockPosition:
    return StockPosition("BLR-KOR", "SKU00001", available, in_transit, capacity, pack, cost)


def test_no_reorder_when_stock_covers_one_and_a_half_days() -> None:
    # 1.5 x 10 = 15; available 15 is not < 15 -> no reorder even though 72 h needs 30
    d = decide(pos(15, 0, 100, 6), 10.0, 30.0)
    assert (d.triggered, d.quantity, d.reason) == (False, 0, Reason.STOCK_COVERS)


def test_basic_order_rounds_up_to_case_pack() -> None:
    # trigger: 4 < 1.5 x 10 = 15. need = 30 - (4 + 0) = 26; headroom = 100 - 4 = 96
    # 26 / 6 = 4.33 -> 5 cases = 30 units; 4 + 0 + 30 = 34 <= 100
    d = decide(pos(4, 0, 100, 6, cost=2500), 10.0, 30.0)
    assert (d.triggered, d.quantity, d.cases, d.reason) == (True, 30, 5, Reason.ORDER)
    assert d.order_value_paise == 30 * 2500  # 75,000 paise = Rs 750


def test_in_transit_counts_toward_the_target() -> None:
    # trigger: 4 < 15. need = 30 - (4 + 12) = 14 -> 14 / 6 = 2.33 -> 3 cases = 18 units
    d = decide(pos(4, 12, 100, 6), 10.0, 30.0)
    assert (d.quantity, d.cases) == (18, 3)


def test_in_transit_can_cover_everything() -> None:
    # trigger: 4 < 15, but need = 30 - (4 + 26) = 0 -> nothing to order
    d = decide(pos(4, 26, 100, 6), 10.0, 30.0)
    assert (d.triggered, d.quantity, d.reason) == (True, 0, Reason.IN_TRANSIT_COVERS)


def test_capacity_cap_then_round_down_when_a_case_overflows() -> None:
    # trigger: 2 < 1.5 x 20 = 30. need = 60 - (2 + 3) = 55; headroom = 40 - 5 = 35
    # capped want = 35 -> 35 / 12 = 2.92 -> 3 cases = 36 > 35 headroom -> round down: 2 cases
    d = decide(pos(2, 3, 40, 12), 20.0, 60.0)
    assert (d.quantity, d.cases, d.reason) == (24, 2, Reason.ORDER)
    assert 2 + 3 + d.quantity <= 40


def test_rounding_up_allowed_when_it_still_fits() -> None:
    # trigger: 5 < 1.5 x 8 = 12. need = 20.5 - 5 = 15.5; headroom = 50 - 5 = 45
    # 15.5 / 4 = 3.875 -> 4 cases = 16 units; 5 + 16 = 21 <= 50
    d = decide(pos(5, 0, 50, 4), 8.0, 20.5)
    assert (d.quantity, d.cases) == (16, 4)


def test_capacity_exactly_reached() -> None:
    # trigger: 0 < 1.5 x 30 = 45. need = 90 - 0 = 90; headroom = 48 -> want 48
    # 48 / 12 = 4 cases exactly = 48 units; 0 + 0 + 48 = 48 <= 48
    d = decide(pos(0, 0, 48, 12), 30.0, 90.0)
    assert (d.quantity, d.cases) == (48, 4)


def test_no_room_for_even_one_case() -> None:
    # trigger: 1 < 1.5 x 10 = 15. need = 30 - (1 + 5) = 24; headroom = 10 - 6 = 4 < 6-pack
    # want = 4 -> 1 case = 6 > 4 -> round down to 0 cases
    d = decide(pos(1, 5, 10, 6), 10.0, 30.0)
    assert (d.triggered, d.quantity, d.reason) == (True, 0, Reason.NO_ROOM)


def test_over_capacity_already() -> None:
    # trigger: 3 < 15; position 3 + 60 = 63 > capacity 50 -> headroom negative -> nothing
    d = decide(pos(3, 60, 50, 1), 10.0, 70.0)
    assert d.quantity == 0
    assert d.reason == Reason.NO_ROOM


def test_float_noise_does_not_add_a_case() -> None:
    # need = 12.000000000001 - 0 -> exactly 2 six-packs, not 3
    d = decide(pos(0, 0, 100, 6), 8.0, 12.000000000001)
    assert d.quantity == 12


def test_zero_forecast_never_orders() -> None:
    d = decide(pos(0, 0, 100, 6), 0.0, 0.0)
    assert (d.triggered, d.quantity) == (False, 0)


def test_plan_uses_forecast_map_and_defaults_to_zero_demand() -> None:
    positions = [
        StockPosition("BLR-KOR", "A", 4, 0, 100, 6),
        StockPosition("BLR-KOR", "B", 0, 0, 100, 6),
    ]
    out = plan(positions, {("BLR-KOR", "A"): (10.0, 30.0)})
    assert [d.quantity for d in out] == [30, 0]  # A as in the basic case; B has no forecast


@pytest.mark.parametrize(
    ("kwargs", "f24", "f72"),
    [
        ({"available": -1}, 1.0, 1.0),
        ({"case_pack": 0}, 1.0, 1.0),
        ({}, -1.0, 1.0),
        ({}, 1.0, float("nan")),
    ],
)
def test_rejects_bad_inputs(kwargs: dict[str, int], f24: float, f72: float) -> None:
    base = {"available": 1, "in_transit": 0, "max_capacity": 10, "case_pack": 1}
    base.update(kwargs)
    with pytest.raises(ValueError):
        decide(StockPosition("S", "K", **base), f24, f72)
