"""A second history source, built apart from the model's family: what the evaluation uses
to tell whether qc's model learned demand or only re-learned ``history.py``.

Differences from :mod:`server.forecast.history` (whose every component has a twin in the
model):

* level: lognormal popularity (not a Zipf curve) with **lasting level shifts** at random
  days (about one per series every 40 days, x lognormal(0, 0.45)), and unannounced price
  changes (about one per 60 days, elasticity per SKU 1..3) that move the level for good;
* shapes: a per-series day-of-week profile (Dirichlet) and the category's hour profile
  shifted by up to +-2 h per store (no shared category x city pattern);
* **promotions**: 1-3 day discounts of 10-40 % announced in the flash schedule, whose lift
  is ``(1 - discount) ** -elasticity`` per SKU (x1.2 .. x4.6, not one flash lift), followed
  by a two-day dip (pull-forward);
* weather: rain lifts every category by a store-specific 0..25 %, scaled by mm;
* **outliers**: bulk orders of 8-40 units in one hour on ~0.2 % of series-days;
* **new and discontinued SKUs**: 10 % launch, 8 % stop inside the window (catalogue dates,
  as the model knows them), with an exponential ramp-up;
* **stock-outs that censor sales**: each store x SKU has a shelf refilled every morning to
  a level between 1.5 and 4 days of its mean demand, and deliveries are missed on 6 % of
  days; an empty shelf sells nothing and the hour is marked censored;
* **substitution**: 40 % of the demand an empty shelf turns away buys the next SKU of the
  same category in the same store, if that one has stock (its sales rise, not its demand).

``expected`` is the true expected demand (level x shapes x promotions x weather; no noise,
no outliers, no substitution) - the floor no method can beat on average. ``demand`` is the
drawn demand before censoring, what the backtest scores against; ``history`` holds the
sales (censored, with substitutes) and the stock-out mask, what the methods are fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from server.forecast.entities import CatalogueSpec, Sku, Store, make_catalogue, traits_for
from server.forecast.factors import (
    RAINY_DAY_MM,
    ExternalFactors,
    FlashSale,
    build_calendar,
    synthetic_matches,
    synthetic_weather,
)
from server.forecast.history import HOURS_PER_DAY, MAX_UNITS, History, hour_profile

SUBSTITUTION = 0.4
MISSED_DELIVERY = 0.06


@dataclass(frozen=True, eq=False)
class SourceData:
    history: History  # sales, censored mask set
    demand: NDArray[np.uint16]  # [series, hour] demand drawn, before the shelf
    expected: NDArray[np.float32]  # [series, hour] true expected demand (the floor)
    factors: ExternalFactors


def second_catalogue(count: int, *, start: date, days: int, seed: int) -> list[Sku]:
    spec = CatalogueSpec(new_share=0.10, discontinued_share=0.08)
    return make_catalogue(count, start=start, days=days, seed=seed + 7919, spec=spec)


def _promotions(
    rng: np.random.Generator, stores: Sequence[Store], skus: Sequence[Sku], days: int
) -> tuple[NDArray[np.float64], list[tuple[int, int, int]]]:
    """[series, day] discount (0 = none) and the (store, sku, day) cells announced."""
    n = len(stores) * len(skus)
    disc = np.zeros((n, days))
    cells: list[tuple[int, int, int]] = []
    # a promotion is chosen per SKU and runs in all or half the stores
    for k in range(len(skus)):
        for _ in range(rng.poisson(days / 30)):
            d0 = int(rng.integers(7, days))
            length = int(rng.integers(1, 4))
            cut = float(rng.uniform(0.1, 0.4))
            where = range(len(stores)) if rng.random() < 0.5 else range(0, len(stores), 2)
            for s in where:
                for d in range(d0, min(days, d0 + length)):
                    disc[s * len(skus) + k, d] = cut
                    cells.append((s, k, d))
    return disc, cells


def generate_second_source(
    stores: Sequence[Store],
    skus: Sequence[Sku],
    *,
    start: date,
    days: int,
    seed: int = 0,
) -> SourceData:
    rng = np.random.default_rng([seed, 23])
    n_store, n_sku = len(stores), len(skus)
    n = n_store * n_sku
    hours = days * HOURS_PER_DAY
    weather = tuple(synthetic_weather({s.city for s in stores}, start, days, seed + 1))
    events = tuple(synthetic_matches(start, days, seed + 1))
    disc, promo_cells = _promotions(rng, stores, skus, days)
    flash = tuple(
        FlashSale(start + timedelta(days=d), skus[k].sku_id, frozenset({stores[s].store_id}))
        for s, k, d in promo_cells
    )
    factors = ExternalFactors(weather=weather, events=events, flash_sales=flash)
    cal = build_calendar(factors, stores=stores, skus=skus, start=start, days=days)

    store_of = np.repeat(np.arange(n_store), n_sku)
    sku_of = np.tile(np.arange(n_sku), n_store)
    # level: lognormal popularity x store size x local taste, with lasting shifts
    pop = rng.lognormal(0.0, 1.3, n_sku) * 1.2
    size = rng.lognormal(0.0, 0.25, n_store)
    level = pop[sku_of] * size[store_of] * rng.lognormal(0.0, 0.3, n)  # units/day
    elastic = rng.uniform(1.0, 3.0, n_sku)[sku_of]
    day_level = np.repeat(level[:, None], days, axis=1)
    for kind_rate, sigma in ((1 / 40, 0.45), (1 / 60, None)):
        for i in range(n):
            for d in rng.choice(days, size=rng.poisson(days * kind_rate), replace=True):
                step = (
                    rng.lognormal(0.0, sigma)
                    if sigma is not None
                    else (1 + rng.uniform(-0.15, 0.15)) ** -elastic[i]  # a price change
                )
                day_level[i, int(d) :] *= step
    # lifecycle from the catalogue dates (the model knows them), exponential ramp
    d_idx = np.arange(days)
    for k, sku in enumerate(skus):
        rows = sku_of == k
        life = np.ones(days)
        if sku.launched_on is not None:
            since = d_idx - (sku.launched_on - start).days
            life = np.where(since < 0, 0.0, 1 - np.exp(-(since + 1) / 6.0))
        if sku.discontinued_on is not None:
            life = np.where(d_idx >= (sku.discontinued_on - start).days, 0.0, life)
        day_level[rows] *= life
    # day of week per series, promotions with a post-promo dip, rain by store
    dow = rng.dirichlet(np.full(7, 12.0), n) * 7
    weekday = np.array([(start + timedelta(days=int(d))).weekday() for d in d_idx])
    promo = np.where(disc > 0, (1 - disc) ** -elastic[:, None], 1.0)
    ended = (disc[:, :-1] > 0) & (disc[:, 1:] == 0)
    dip = np.ones_like(promo)
    dip[:, 1:][ended] = 0.8
    dip[:, 2:][ended[:, :-1]] *= 0.85
    rain_mm = cal.rain_mm[[cal.city_index(s.city) for s in stores]]  # [store, day]
    wet = np.where(rain_mm >= RAINY_DAY_MM, np.minimum(1.0, rain_mm / 20.0), 0.0)
    rain_lift = 1 + rng.uniform(0.0, 0.25, n_store)[:, None] * wet
    daily = day_level * dow[:, weekday] * promo * dip * rain_lift[store_of]
    # hour shapes: the category's profile rolled by the store's -2..+2 h habit
    shift = rng.integers(-2, 3, n_store)
    prof = np.empty((n, days, HOURS_PER_DAY))
    for k, sku in enumerate(skus):
        tr = traits_for(sku.category)
        wd, we = hour_profile(tr, weekend=False), hour_profile(tr, weekend=True)
        for s in range(n_store):
            i = s * n_sku + k
            p = np.where((weekday >= 5)[:, None], we[None, :], wd[None, :])
            prof[i] = np.roll(p, int(shift[s]), axis=1)
    expected = (daily[:, :, None] * prof).reshape(n, hours)
    # demand: negative binomial around the expected, plus bulk-order outliers
    lam = rng.gamma(4.0, 1.0, expected.shape) * expected / 4.0
    demand = rng.poisson(lam).astype(np.int64)
    bulk = rng.random((n, days)) < 0.002
    for i, d in zip(*np.nonzero(bulk), strict=True):
        demand[i, d * 24 + int(rng.integers(8, 22))] += int(rng.integers(8, 41))
    sales, censored = _shelves(rng, demand, expected, n_store, n_sku, skus)
    history = History.empty(stores=stores, skus=skus, start=start, days=days)
    history = replace(history, units=np.minimum(sales, MAX_UNITS).astype(np.uint16))
    history = replace(history, censored=censored)
    return SourceData(
        history=history,
        demand=np.minimum(demand, MAX_UNITS).astype(np.uint16),
        expected=expected.astype(np.float32),
        factors=factors,
    )


def _shelves(
    rng: np.random.Generator,
    demand: NDArray[np.int64],
    expected: NDArray[np.float64],
    n_store: int,
    n_sku: int,
    skus: Sequence[Sku],
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Sell from a shelf refilled at 06:00 each day; empty shelves turn demand away, some
    of it to the next SKU of the category in the store."""
    n, hours = demand.shape
    days = hours // HOURS_PER_DAY
    mean_day = expected.reshape(n, days, 24).sum(2)
    # a shelf of 1.5..4 days of the trailing week's mean demand (at least one unit)
    cover = np.asarray(rng.uniform(1.5, 4.0, n), dtype=np.float64)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(mean_day, axis=1)], axis=1)
    lo = np.maximum(0, np.arange(days) - 7)
    span = np.maximum(1, np.arange(days) - lo)
    trailing = np.where(
        np.arange(days) > 0, (cum[:, np.arange(days)] - cum[:, lo]) / span, mean_day[:, :1]
    )
    target = np.maximum(1, np.ceil(cover[:, None] * trailing)).astype(np.int64)
    missed = rng.random((n, days)) < MISSED_DELIVERY
    # substitute: the next SKU of the same category in the same store (itself if alone)
    cats = [k.category for k in skus]
    sub_sku = np.arange(n_sku)
    for k in range(n_sku):
        same = [j for j in range(n_sku) if cats[j] == cats[k] and j != k]
        if same:
            sub_sku[k] = next((j for j in same if j > k), same[0])
    sub = (np.arange(n) // n_sku) * n_sku + sub_sku[np.arange(n) % n_sku]
    stock = target[:, 0].copy()
    sales = np.zeros_like(demand)
    censored = np.zeros(demand.shape, dtype=bool)
    for t in range(hours):
        d, h = divmod(t, 24)
        if h == 6 and d > 0:
            stock = np.where(missed[:, d], stock, np.maximum(stock, target[:, d]))
        sold = np.minimum(demand[:, t], stock)
        stock -= sold
        lost = demand[:, t] - sold
        moved = rng.binomial(lost, SUBSTITUTION)
        extra = np.bincount(sub, weights=moved, minlength=n).astype(np.int64)
        served = np.minimum(extra, stock)
        stock -= served
        sales[:, t] = sold + served
        censored[:, t] = (stock == 0) | (lost > 0)
    return sales, censored
