"""A simulated month of replenishment in closed loop: the daily job on, judged by outcome.

The world is the second history source (:mod:`server.forecast.second_source`: level
shifts, promotions, outliers, new and discontinued SKUs); its first ``history_days`` are the
sales history the month starts from, the next ``days`` are the month. Every policy meets
the same hourly demand (common random numbers), so the differences are the policies'.

Each day at 02:00 IST the daily job runs on what the policy itself has seen:

* ``seed rule``: qc's model fitted on the policy's own sales (its own stock-outs censored
  and imputed), forecast 24 h / 72 h from midnight, the seeded rule (``available < 1.5 x
  next 24 h`` -> order up to the 72 h mean, capacity and case packs);
* ``quantile rule``: the same forecast, order up to the 95 % quantile of 72 h demand
  (negative binomial, dispersion per category from the last 28 days) whenever stock + in
  transit is below it (:func:`server.forecast.replenish.decide_service_level`);
* ``fixed min/max``: no forecast: when stock + in transit <= the seed's reorder level
  (capacity / 5, at least 5), order up to the capacity.

The model is refitted every ``refit_days`` days (1 = the daily job with
``QC_FORECAST_DAILY=true``) and predicts every day from the newest sales. Weather reaches
it as forecast. An order arrives 24 h later; stock above the capacity on arrival is
refused (over capacity). Perishable categories keep their units for a shelf life (FIFO) and
throw away what is older. An empty shelf loses the demand (no substitution in the loop)
and the hour counts as a stock-out hour of that SKU.

Capacity and case packs follow the seed (``server/seed/generate.py``): capacity = 40 + 160
x popularity^0.5 (popularity = 1 / rank^0.8 by the SKU's demand in the store), case packs
of 6, 12 or 24.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from server.forecast.baselines import daily_totals, weather_as_forecast
from server.forecast.censoring import impute_censored
from server.forecast.entities import make_stores
from server.forecast.estimator import DemandModel, ForecastConfig
from server.forecast.factors import ExternalFactors
from server.forecast.history import HOURS_PER_DAY, History
from server.forecast.replenish import (
    SERVICE_LEVEL,
    StockPosition,
    decide,
    decide_service_level,
    demand_quantile,
    dispersion,
)
from server.forecast.second_source import generate_second_source, second_catalogue

SEED_RULE = "seed rule (mean x 1.5 trigger)"
QUANTILE = f"quantile rule ({SERVICE_LEVEL:.0%} service)"
MINMAX = "fixed min/max (no forecast)"
DECIDE_HOUR = 2  # IST: the daily job's default hour (QC_REPLENISH_HOUR_IST)
LEAD_HOURS = 24
SHELF_LIFE_DAYS = {"fruits-vegetables": 3, "dairy-bread-eggs": 4, "bakery": 3, "meat-fish": 2}
_AGES = 8  # age buckets in days; the last one holds everything older (never perishes)


@dataclass(frozen=True)
class Outcome:
    policy: str
    series: int
    days: int
    demand: int
    sold: int
    lost: int
    stockout_hours: int
    skus_with_stockout: int
    thrown_away: int
    over_capacity: int
    mean_stock: float
    orders: int
    seconds: float

    @property
    def stockout_hours_per_sku(self) -> float:
        return self.stockout_hours / self.series


@dataclass(frozen=True)
class World:
    stores: int
    skus: int
    history: History  # history + month: sales before the month, demand over it
    demand: NDArray[np.int64]  # [series, hour] over the whole span
    expected: NDArray[np.float32]  # [series, hour] the true expected demand
    factors: ExternalFactors
    history_days: int
    days: int
    capacity: NDArray[np.int64]
    reorder_level: NDArray[np.int64]
    case_pack: NDArray[np.int64]
    shelf_life: NDArray[np.int64]  # days; _AGES = does not perish within the month


def build_world(
    stores: int, skus: int, *, history_days: int, days: int, start: date, seed: int
) -> World:
    st = make_stores(stores)
    total = history_days + days
    sk = second_catalogue(skus, start=start, days=total, seed=seed)
    data = generate_second_source(st, sk, start=start, days=total, seed=seed)
    h = data.history
    rng = np.random.default_rng([seed, 501])
    # the seed's capacity curve over the SKU's demand rank within its store
    mean = data.expected.reshape(h.n_series, -1).sum(axis=1)
    capacity = np.zeros(h.n_series, dtype=np.int64)
    for s in range(stores):
        rows = np.flatnonzero(h.series_store == s)
        rank = np.empty(rows.size, dtype=np.int64)
        rank[np.argsort(-mean[rows])] = np.arange(rows.size)
        popularity = 1.0 / (rank + 1) ** 0.8
        capacity[rows] = 40 + (160 * popularity**0.5).astype(np.int64)
    life = np.array(
        [SHELF_LIFE_DAYS.get(h.skus[int(k)].category, _AGES) for k in h.series_sku],
        dtype=np.int64,
    )
    return World(
        stores=stores,
        skus=skus,
        history=h,
        demand=data.demand.astype(np.int64),
        expected=data.expected,
        factors=data.factors,
        history_days=history_days,
        days=days,
        capacity=capacity,
        reorder_level=np.maximum(5, capacity // 5),
        case_pack=rng.choice([6, 12, 12, 24], size=h.n_series).astype(np.int64),
        shelf_life=life,
    )


Forecaster = Callable[[History, int], tuple[NDArray[np.float64], NDArray[np.float64]]]


class ModelForecaster:
    """Forecasts (24 h, 72 h totals) at a midnight origin from a policy's own history,
    refitting qc's model every ``refit_days`` days."""

    def __init__(self, world: World, config: ForecastConfig, refit_days: int, seed: int):
        self.world, self.config, self.refit_days, self.seed = world, config, refit_days, seed
        self.model: DemandModel | None = None
        self.fitted_day = -(10**6)

    def __call__(
        self, history: History, origin_day: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        o = origin_day * HOURS_PER_DAY
        filled = impute_censored(history, until_hour=o)
        factors = weather_as_forecast(self.world.factors, history.day_of(o), self.seed)
        if self.model is None or origin_day - self.fitted_day >= self.refit_days:
            self.model = DemandModel(self.config).fit(filled, factors, until_hour=o)
            self.fitted_day = origin_day
        fc = self.model.predict(filled, factors, origin_hour=o, horizon_hours=72)
        return fc.total(24), fc.total(72)


class OracleForecaster:
    """The world's own expected demand as the forecast: what a perfect model would say (the
    floor of the backtest), to separate the rule from the forecast."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(
        self, history: History, origin_day: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        o = origin_day * HOURS_PER_DAY
        ahead = self.world.expected[:, o : o + 72].astype(np.float64)
        return ahead[:, :24].sum(axis=1), ahead.sum(axis=1)


def simulate(world: World, policy: str, forecaster: Forecaster | None) -> Outcome:
    t0 = time.perf_counter()
    h0 = world.history
    n = h0.n_series
    first = world.history_days * HOURS_PER_DAY
    hours = world.days * HOURS_PER_DAY
    sales = h0.units.astype(np.uint16).copy()
    censored = h0.censored.copy() if h0.censored is not None else np.zeros(sales.shape, dtype=bool)
    sales[:, first:] = 0
    censored[:, first:] = False
    # start: 3 days of the last week's sales on the shelf (under capacity), all fresh
    daily = daily_totals(h0.units[:, :first])
    lots = np.zeros((n, _AGES), dtype=np.int64)
    lots[:, 0] = np.minimum(world.capacity, np.ceil(3 * daily[:, -7:].mean(axis=1)))
    arriving = np.zeros(n, dtype=np.int64)
    lost = stockout_hours = thrown = over = orders = 0
    out_any = np.zeros(n, dtype=bool)
    stock_sum = 0.0
    phi = _category_dispersion(h0, daily)
    demand_total = int(world.demand[:, first:].sum())
    for t in range(hours):
        abs_t = first + t
        day, hour = divmod(abs_t, HOURS_PER_DAY)
        if hour == DECIDE_HOUR:
            # yesterday's order arrives; refuse what does not fit
            room = np.maximum(0, world.capacity - lots.sum(axis=1))
            take = np.minimum(arriving, room)
            over += int((arriving - take).sum())
            lots[:, 0] += take
            arriving[:] = 0
            thrown += _age(lots, world.shelf_life)
            qty = _decide(world, policy, forecaster, lots.sum(axis=1), sales, censored, day, phi)
            arriving += qty
            orders += int((qty > 0).sum())
        want = world.demand[:, abs_t]
        have = lots.sum(axis=1)
        sold = np.minimum(want, have)
        _consume(lots, sold)
        short = want - sold
        lost += int(short.sum())
        empty = (lots.sum(axis=1) == 0) | (short > 0)
        stockout_hours += int(empty.sum())
        out_any |= empty
        sales[:, abs_t] = sold
        censored[:, abs_t] = empty
        stock_sum += float(lots.sum())
    return Outcome(
        policy=policy,
        series=n,
        days=world.days,
        demand=demand_total,
        sold=int(sales[:, first:].astype(np.int64).sum()),
        lost=lost,
        stockout_hours=stockout_hours,
        skus_with_stockout=int(out_any.sum()),
        thrown_away=thrown,
        over_capacity=over,
        mean_stock=stock_sum / hours,
        orders=orders,
        seconds=time.perf_counter() - t0,
    )


def _category_dispersion(h: History, daily: NDArray[np.float64]) -> NDArray[np.float64]:
    cats = np.array(h.series_categories())
    phi = np.zeros(h.n_series)
    last = daily[:, -28:]
    for c in np.unique(cats):
        m = (cats == c) & (last.sum(axis=1) > 0)
        phi[cats == c] = dispersion(last[m]) if m.any() else 0.0
    return phi


def _decide(
    world: World,
    policy: str,
    forecaster: Forecaster | None,
    on_hand: NDArray[np.int64],
    sales: NDArray[np.uint16],
    censored: NDArray[np.bool_],
    day: int,
    phi: NDArray[np.float64],
) -> NDArray[np.int64]:
    n = on_hand.size
    qty = np.zeros(n, dtype=np.int64)
    if policy == MINMAX:
        low = on_hand <= world.reorder_level
        want = world.capacity - on_hand
        cases = want // world.case_pack  # whole cases under the capacity
        qty = np.where(low, cases * world.case_pack, 0)
        return np.asarray(qty, dtype=np.int64)
    assert forecaster is not None
    seen = replace(
        world.history,
        units=sales[:, : day * HOURS_PER_DAY],
        censored=censored[:, : day * HOURS_PER_DAY],
    )
    f24, f72 = forecaster(seen, day)
    q72 = demand_quantile(f72, phi, SERVICE_LEVEL, days=3.0) if policy == QUANTILE else None
    for i in range(n):
        pos = StockPosition(
            "S",
            str(i),
            available=int(on_hand[i]),
            in_transit=0,
            max_capacity=int(world.capacity[i]),
            case_pack=int(world.case_pack[i]),
        )
        d = (
            decide_service_level(pos, float(q72[i]))
            if q72 is not None
            else decide(pos, float(f24[i]), float(f72[i]))
        )
        qty[i] = d.quantity
    return qty


def _age(lots: NDArray[np.int64], life: NDArray[np.int64]) -> int:
    """One day older: units reaching their shelf life are thrown away; returns how many."""
    ages = np.arange(_AGES)
    expired = (ages[None, :] + 1 >= life[:, None]) & (life[:, None] < _AGES)
    gone = int((lots * expired).sum())
    lots[expired] = 0
    last = lots[:, -1] + lots[:, -2]
    lots[:, 1:-1] = lots[:, :-2].copy()
    lots[:, -1] = last
    lots[:, 0] = 0
    return gone


def _consume(lots: NDArray[np.int64], units: NDArray[np.int64]) -> None:
    """Sell ``units`` per series, oldest lots first."""
    left = units.copy()
    for a in range(_AGES - 1, -1, -1):
        take = np.minimum(lots[:, a], left)
        lots[:, a] -= take
        left -= take


def run_month(
    *,
    stores: int = 3,
    skus: int = 100,
    history_days: int = 42,
    days: int = 30,
    start: date = date(2025, 1, 6),
    seed: int = 0,
    refit_days: int = 7,
    config: ForecastConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """The month for the three policies on one seeded world."""
    world = build_world(stores, skus, history_days=history_days, days=days, start=start, seed=seed)
    cfg = config or ForecastConfig(max_train_rows=60_000, max_iter=100, threads=1)
    results = []
    for policy in (SEED_RULE, QUANTILE, MINMAX):
        fc = None if policy == MINMAX else ModelForecaster(world, cfg, refit_days, seed)
        results.append(simulate(world, policy, fc))
        if progress is not None:
            progress(f"{policy}: done in {results[-1].seconds:.0f} s")
    return results


def format_outcomes(results: list[Outcome], *, start: date, history_days: int) -> str:
    r0 = results[0]
    month0 = start + timedelta(days=history_days)
    lines = [
        f"closed-loop month {month0}..{month0 + timedelta(days=r0.days - 1)}: {r0.series} "
        f"store x SKU series, demand {r0.demand:,} units",
        f"{'policy':<32} {'stock-out h/SKU':>15} {'SKUs out':>9} {'lost units':>11} "
        f"{'lost %':>7} {'thrown away':>12} {'over cap':>9} {'mean stock':>11} {'orders':>7}",
    ]
    for r in results:
        lines.append(
            f"{r.policy:<32} {r.stockout_hours_per_sku:>15.1f} {r.skus_with_stockout:>9} "
            f"{r.lost:>11,} {r.lost / max(1, r.demand):>7.1%} {r.thrown_away:>12,} "
            f"{r.over_capacity:>9,} {r.mean_stock:>11,.0f} {r.orders:>7,}"
        )
    return "\n".join(lines)
