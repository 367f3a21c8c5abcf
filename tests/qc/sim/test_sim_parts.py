"""The simulation's pure parts: the start of the simulated day and its clock anchor, the
daily order curve, baskets by time of day, popularity."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from qc.sim.demand import Want, choose_basket, hourly_profile, pick_product, popularity
from qc.sim.start import (
    Start,
    StoreHours,
    anchor_for,
    choose_start,
    parse_start,
    plan_start,
)
from server.kit.clock import Clock
from shared.schemas.catalog import ProductCard

IST = ZoneInfo("Asia/Kolkata")
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=IST).timestamp()


def test_the_anchor_makes_the_clock_read_the_start_and_run_faster() -> None:
    start = NOON + 6.5 * 3600  # 18:30
    anchor, at = anchor_for(start, speed=20, now=NOON)
    assert at == start
    clock = Clock(speed=20, anchor=anchor)
    # what the clock reads at real NOON, and ten real seconds later
    read = anchor + (NOON - anchor) * 20
    assert read == pytest.approx(start, abs=1e-3)
    assert anchor + (NOON + 10 - anchor) * 20 == pytest.approx(start + 200, abs=1e-3)
    assert clock.speed == 20
    assert anchor_for(start, speed=1, now=NOON) == (NOON, NOON)  # cannot move a real clock


def test_the_day_starts_at_the_asked_hour_never_before_what_was_recorded() -> None:
    tz = "Asia/Kolkata"
    assert choose_start(start_at=None, timezone=tz, latest=None, now=NOON) == NOON
    later = NOON + 5 * 3600
    assert choose_start(start_at=None, timezone=tz, latest=later, now=NOON) == later + 60
    evening = choose_start(start_at=(18, 30), timezone=tz, latest=None, now=NOON)
    assert datetime.fromtimestamp(evening, IST).strftime("%d %H:%M") == "24 18:30"
    morning = choose_start(start_at=(9, 0), timezone=tz, latest=NOON, now=NOON)
    assert datetime.fromtimestamp(morning, IST).strftime("%d %H:%M") == "25 09:00"
    # orders still in flight from an earlier run: it carries on, not tomorrow morning
    assert choose_start(start_at=(9, 0), timezone=tz, latest=later, now=NOON, unfinished=3) == (
        later + 60
    )
    assert parse_start("07:05") == (7, 5)
    for bad in ("7", "25:00", "ab:cd"):
        with pytest.raises(ValueError):
            parse_start(bad)


SEED_HOURS = {
    day: [["06:00", "02:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
CITY: StoreHours = [(SEED_HOURS, "Asia/Kolkata")] * 3


def _plan(
    *, now: float, start_at: tuple[int, int] | None = None, stores: StoreHours = CITY
) -> Start:
    """A fresh run (nothing recorded, nothing in flight) in the city's zone."""
    return plan_start(
        start_at=start_at,
        timezone="Asia/Kolkata",
        latest=None,
        unfinished=0,
        stores=stores,
        now=now,
    )


def _at(day: int, hh: int, mm: int = 0) -> float:
    return datetime(2026, 11, day, hh, mm, tzinfo=IST).timestamp()


def test_a_default_demo_at_night_starts_at_the_next_lively_open_hour_and_says_so() -> None:
    night = _plan(now=_at(24, 3, 12))  # stores closed 02:00-06:00
    assert night.local("Asia/Kolkata").strftime("%d %H:%M") == "24 06:15"
    assert night.note is not None
    assert "at 03:12 the stores are closed" in night.note
    assert "06:00-02:00 every day (Asia/Kolkata)" in night.note and "Tue 06:15" in night.note
    late = _plan(now=_at(24, 23, 40))  # open, but orders hardly come
    assert late.local("Asia/Kolkata").strftime("%d %H:%M") == "25 06:15"
    assert late.note is not None and "orders hardly come" in late.note
    evening = _plan(now=_at(24, 19, 5))  # alive: now, nothing to say
    assert evening == Start(_at(24, 19, 5), None)
    afternoon = _plan(now=_at(24, 14, 30))  # quieter, not asleep: kept
    assert afternoon.at == _at(24, 14, 30) and afternoon.note is None
    # an asked hour is kept unless the stores are closed then
    asked = _plan(start_at=(3, 30), now=_at(24, 12))
    assert asked.local("Asia/Kolkata").strftime("%d %H:%M") == "24 06:00"
    assert asked.note is not None and "at 03:30 the stores are closed" in asked.note
    quiet = _plan(start_at=(23, 30), now=_at(24, 12))
    assert quiet.local("Asia/Kolkata").strftime("%d %H:%M") == "24 23:30" and quiet.note is None
    # stores open round the clock: a quiet night moves, the note says so
    always = _plan(stores=[(None, "Asia/Kolkata")], now=_at(24, 3))
    assert always.note is not None and "round the clock" in always.note


def test_orders_peak_in_the_morning_and_the_evening() -> None:
    assert hourly_profile(19) > hourly_profile(8) > hourly_profile(15) > hourly_profile(3)
    assert hourly_profile(8.5) == pytest.approx((hourly_profile(8) + hourly_profile(9)) / 2)
    assert hourly_profile(24) == hourly_profile(0)


def test_baskets_follow_the_time_of_day() -> None:
    rng = random.Random(5)
    morning = Counter(choose_basket(rng, 8.0)[0] for _ in range(2000))
    night = Counter(choose_basket(rng, 23.5)[0] for _ in range(2000))
    assert morning["breakfast"] > 3 * night["breakfast"]
    assert night["movie-night"] > 3 * morning["movie-night"]
    name, wants = choose_basket(random.Random(1), 8.0)
    assert name and wants and all(w.category for w in wants)


def _card(sku: str, name: str, qty: int) -> ProductCard:
    return ProductCard(
        sku_id=sku,
        name=name,
        brand="Amul",
        category_id="dairy-bread-eggs",
        pack_size="1 L",
        mrp_paise=6800,
        price_paise=6500,
        available_qty=qty,
        in_stock=qty > 0,
    )


def test_products_are_picked_in_stock_by_name_and_popularity() -> None:
    cards = [_card(f"SKU{i:05d}", f"Amul Toned Milk {i}", 5) for i in range(40)]
    cards += [_card("SKU09999", "Amul Eggs", 0), _card("SKU09998", "Amul Butter", 4)]
    rng = random.Random(2)
    milk = Want("dairy-bread-eggs", "Milk")
    chosen = [pick_product(rng, cards, milk, seed=1, exclude=set()) for _ in range(3000)]
    picked = Counter(card.sku_id for card in chosen if card is not None)
    assert None not in chosen
    assert "SKU09998" not in picked  # not milk
    favourite = max(cards[:40], key=lambda c: popularity(1, c.sku_id)).sku_id
    assert picked.most_common(1)[0][0] == favourite
    # nothing matching in stock: any in-stock product of the category
    eggs = pick_product(rng, cards, Want("dairy-bread-eggs", "Eggs"), seed=1, exclude=set())
    assert eggs is not None and eggs.in_stock
    assert pick_product(rng, [cards[40]], Want("dairy-bread-eggs"), seed=1, exclude=set()) is None
