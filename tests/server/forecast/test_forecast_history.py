"""The synthetic history: determinism, shapes, planted effects and the DB row export."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from server.forecast.entities import Sku, Store, make_catalogue, make_stores
from server.forecast.factors import Event, ExternalFactors, FlashSale, WeatherDay
from server.forecast.history import (
    IST,
    History,
    HistoryConfig,
    expected_units,
    generate_history,
)
from tests.server.forecast.forecast_world import World

MON = date(2024, 8, 5)  # a Monday with no national or Karnataka holiday nearby
DRY = ExternalFactors(holiday_dates=frozenset())
FLAT = HistoryConfig(trend_sigma=0.0)  # no per-series drift: week-on-week ratios are exact


def _small(seed: int = 0, factors: ExternalFactors = DRY) -> History:
    stores = make_stores(2, cities=["Bengaluru", "Mysuru"])
    skus = make_catalogue(30, start=MON, days=14, seed=seed)
    return generate_history(stores, skus, start=MON, days=14, factors=factors, seed=seed)


def test_deterministic_per_seed() -> None:
    a, b, c = _small(1), _small(1), _small(2)
    assert np.array_equal(a.units, b.units)
    assert not np.array_equal(a.units, c.units)
    assert a.units.shape == (60, 14 * 24) and a.units.dtype == np.uint16
    # series are store-major: series i = store i // n_sku, SKU i % n_sku
    assert a.store_of(31).store_id == "BLR-IND" and a.sku_of(31).sku_id == "SKU00002"


def test_hour_of_day_and_weekend_shape(world: World) -> None:
    h = world.history
    by_hour = h.units.reshape(h.n_series, h.days, 24).sum(axis=(0, 1)).astype(float)
    share = by_hour / by_hour.sum()
    assert share[8:11].mean() > 4 * share[2:6].mean()  # morning peak vs the dead of night
    assert share[18:23].mean() > share[8:11].mean()  # the evening is the busiest
    assert int(np.argmax(share)) in range(18, 23)
    per_day = h.units.reshape(h.n_series, h.days, 24).sum(axis=(0, 2)).astype(float)
    weekday = np.array([(h.start + timedelta(days=d)).weekday() for d in range(h.days)])
    assert per_day[weekday >= 5].mean() > 1.05 * per_day[weekday < 5].mean()


def test_zipf_catalogue_is_mostly_slow_movers() -> None:
    start = date(2025, 1, 1)
    skus = make_catalogue(5000, start=start, days=14)
    h = generate_history([Store("BLR-KOR")], skus, start=start, days=14, factors=DRY)
    per_day = np.sort(h.units.sum(axis=1) / 14.0)[::-1]
    assert np.median(per_day) < 1.0  # the median SKU sells less than a unit a day
    assert per_day[:1000].sum() / per_day.sum() > 0.6  # top 20 % of SKUs carry most units
    assert 3_000 < per_day.sum() < 15_000  # a believable dark store: thousands of units a day


def _expected(
    factors: ExternalFactors, config: HistoryConfig | None = None
) -> tuple[History, np.ndarray]:
    stores = [Store("BLR-KOR", "Bengaluru"), Store("BLR-IND", "Bengaluru")]
    cats = (
        "snacks-munchies",
        "tea-coffee",
        "cold-drinks-juices",
        "sweets-chocolates",
        "personal-care",
    )
    skus = [Sku(f"S{c}{i}", c) for c in cats for i in range(20)]
    h = History.empty(stores=stores, skus=skus, start=MON, days=14)
    mean = expected_units(stores, skus, start=MON, days=14, factors=factors, config=config or FLAT)
    return h, mean


def _ratio(h: History, mean: np.ndarray, category: str, day: int, hours: range) -> float:
    """Category units in ``hours`` of ``day`` over the same hours a week earlier."""
    rows = np.array([c == category for c in h.series_categories()])
    now = mean[rows][:, [day * 24 + x for x in hours]].sum()
    before = mean[rows][:, [(day - 7) * 24 + x for x in hours]].sum()
    return float(now / before)


def test_planted_match_evening_effect_is_configurable() -> None:
    match_day = MON + timedelta(days=8)  # a Tuesday; a week earlier had no match
    factors = ExternalFactors(events=(Event(match_day, 19),), holiday_dates=frozenset())
    h, mean = _expected(factors)
    assert _ratio(h, mean, "snacks-munchies", 8, range(19, 24)) == pytest.approx(1.40, abs=1e-3)
    assert _ratio(h, mean, "cold-drinks-juices", 8, range(19, 24)) == pytest.approx(1.30, abs=1e-3)
    assert _ratio(h, mean, "personal-care", 8, range(19, 24)) == pytest.approx(1.0, abs=1e-3)
    assert _ratio(h, mean, "snacks-munchies", 8, range(8, 12)) == pytest.approx(1.0, abs=1e-3)
    _, mean60 = _expected(
        factors, HistoryConfig(trend_sigma=0.0, match_lifts={"snacks-munchies": 0.6})
    )
    assert _ratio(h, mean60, "snacks-munchies", 8, range(19, 24)) == pytest.approx(1.60, abs=1e-3)


def test_rain_and_holiday_effects() -> None:
    wet_day, holiday = MON + timedelta(days=9), MON + timedelta(days=10)
    factors = ExternalFactors(
        weather=(WeatherDay("Bengaluru", wet_day, 30.0),), holiday_dates=frozenset({holiday})
    )
    h, mean = _expected(factors)
    day = range(24)
    assert _ratio(h, mean, "tea-coffee", 9, day) == pytest.approx(1.35, abs=1e-3)
    assert _ratio(h, mean, "cold-drinks-juices", 9, day) == pytest.approx(0.85, abs=1e-3)
    assert _ratio(h, mean, "personal-care", 9, day) == pytest.approx(1.0, abs=1e-3)
    assert _ratio(h, mean, "sweets-chocolates", 10, day) == pytest.approx(1.60, abs=1e-3)


def test_flash_sale_spikes_only_the_sale_store() -> None:
    stores = make_stores(2)
    skus = make_catalogue(40, start=MON, days=14)
    target = next(k for k in skus if k.launched_on is None and k.discontinued_on is None)
    sale_day = MON + timedelta(days=9)
    factors = ExternalFactors(
        flash_sales=(FlashSale(sale_day, target.sku_id, frozenset({"BLR-KOR"})),),
        holiday_dates=frozenset(),
    )
    mean = expected_units(stores, skus, start=MON, days=14, factors=factors, config=FLAT)
    h = History.empty(stores=stores, skus=skus, start=MON, days=14)
    idx = h.series_index()
    on = mean[idx["BLR-KOR", target.sku_id]].reshape(14, 24).sum(axis=1)
    off = mean[idx["BLR-IND", target.sku_id]].reshape(14, 24).sum(axis=1)
    assert on[9] / on[2] == pytest.approx(4.0, rel=1e-3)  # 1 + flash_lift, same weekday
    assert off[9] / off[2] == pytest.approx(1.0, abs=1e-3)


def test_new_and_discontinued_products() -> None:
    start = date(2024, 7, 1)
    stores = [Store("BLR-KOR")]
    skus = [
        Sku("NEW", "snacks-munchies", launched_on=start + timedelta(days=20)),
        Sku("OLD", "snacks-munchies", discontinued_on=start + timedelta(days=15)),
    ]
    cfg = HistoryConfig(top_daily_units=50.0, reference_catalogue_size=2)
    h = generate_history(stores, skus, start=start, days=40, factors=DRY, config=cfg)
    new, old = h.units[0].reshape(40, 24).sum(1), h.units[1].reshape(40, 24).sum(1)
    assert new[:20].sum() == 0 and new[20:].sum() > 0
    assert old[15:].sum() == 0 and old[:15].sum() > 0
    assert new[34:].mean() > new[20:23].mean()  # demand ramps up after launch


def test_rows_are_utc_and_round_trip() -> None:
    h = _small(3)
    rows = list(h.iter_rows())
    assert sum(r[3] for r in rows) == int(h.units.sum())
    assert all(r[3] > 0 and r[2].tzinfo is not None for r in rows)
    # hour 0 is local midnight: 00:00 IST = 18:30 UTC the day before
    assert h.hour_start_utc(0) == datetime(2024, 8, 4, 18, 30, tzinfo=UTC)
    assert h.hour_start_utc(0) == datetime(2024, 8, 5, 0, 0, tzinfo=IST)
    first = next(r for r in rows)
    assert first[2].minute == 30 and first[2].utcoffset() == timedelta(0)
    back = History.from_rows(rows, stores=h.stores, skus=h.skus, start=h.start, days=h.days)
    assert np.array_equal(back.units, h.units)
    assert len(list(h.truncated(24).iter_rows(skip_zeros=False))) == h.n_series * 24
    s, t, u = h.nonzero()
    assert int(u.sum()) == int(h.units.sum()) and len(s) == len(rows) == len(t)


def test_hour_index_and_row_validation() -> None:
    h = _small()
    assert h.hour_index(datetime(2024, 8, 5, 1, 0, tzinfo=IST)) == 1
    with pytest.raises(ValueError, match="hour boundary"):
        h.hour_index(datetime(2024, 8, 5, 1, 0, tzinfo=UTC))  # 06:30 IST
    with pytest.raises(ValueError, match="timezone-aware"):
        h.hour_index(datetime(2024, 8, 5, 1, 0))
    when = datetime(2024, 8, 5, 2, tzinfo=IST)

    def load(store_id: str, at: datetime) -> History:
        rows = [(store_id, "SKU00001", at, 1)]
        return History.from_rows(rows, stores=h.stores, skus=h.skus, start=h.start, days=1)

    assert load("BLR-KOR", when).units.sum() == 1
    with pytest.raises(ValueError, match="unknown store"):
        load("NOPE", when)
    with pytest.raises(ValueError, match="outside"):
        load("BLR-KOR", when + timedelta(days=1))
    with pytest.raises(ValueError):
        h.truncated(25)
