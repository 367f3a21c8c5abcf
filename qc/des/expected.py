"""The simulation's own expected demand per store x SKU x local hour, from the rates it
draws arrivals with and the basket rules its customers follow (``qc.sim.demand``).

Exact for what a customer asks for on arrival: the hour's arrival rate (the day's curve,
linear within the hour, times the weekday's volume) shared evenly by the stores (a
customer lives around a store drawn uniformly), times the chance the payment goes
through, times the expected units of each SKU in one basket; zero while the stores are
closed (02:00-06:00, the seed's hours: whoever arrives then is refused). Left out, because they are
not known in advance: customers refused (no store could serve them in time), the second
product taken when the first is out of stock (substitution), and a want skipped because
the same SKU is already in the basket. It is the floor of the sim's history source and the
forecast its nightly replenishment plans with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from qc.des.config import HOURLY_DEMAND, WEEKDAY_DEMAND, DesConfig
from qc.sim import demand

Product = tuple[str, str]  # sku, name
IMPULSE_CHANCE = 0.3  # demand.choose_basket: an impulse buy is added this often
KEEP_CHANCE = 0.85  # ... and each want of the basket is kept this often
CLOSED_HOURS = range(2, 6)  # the seed's operating hours are 06:00-02:00: arrivals refused


def _mean_quantity(want: demand.Want) -> float:
    """E[demand.quantity] (mostly one; staples sometimes two or three)."""
    weights = [6, 3, 1][: want.max_qty]
    return sum(q * w for q, w in zip(range(1, want.max_qty + 1), weights, strict=True)) / sum(
        weights
    )


def _choice(
    products: Mapping[str, list[Product]], want: demand.Want, seed: int, index: Mapping[str, int]
) -> NDArray[np.float64]:
    """The chance each SKU is the one taken for ``want`` (``Customers._choose``)."""
    out = np.zeros(len(index))
    stocked = products.get(want.category, [])
    if want.keyword:
        stocked = [p for p in stocked if want.keyword.lower() in p[1].lower()] or stocked
    if not stocked:
        return out
    weights = np.array([demand.popularity(seed, sku) + 0.01 for sku, _ in stocked])
    for (sku, _), w in zip(stocked, weights / weights.sum(), strict=True):
        out[index[sku]] += w
    return out


def units_per_arrival(
    products: Mapping[str, list[Product]], skus: Sequence[str], seed: int
) -> NDArray[np.float64]:
    """[part of day, sku] expected units one arriving customer asks for."""
    index = {sku: i for i, sku in enumerate(skus)}
    out = np.zeros((4, len(skus)))
    for part in range(4):
        total = sum(b.weights[part] for b in demand.BASKETS)
        for basket in demand.BASKETS:
            share = basket.weights[part] / total
            n = len(basket.wants)
            for j, want in enumerate(basket.wants):
                # each want is kept at 0.85; when none is, the first one is
                kept = KEEP_CHANCE + ((1 - KEEP_CHANCE) ** n if j == 0 else 0.0)
                out[part] += (
                    share * kept * _mean_quantity(want) * _choice(products, want, seed, index)
                )
        for want in demand.IMPULSE:
            out[part] += IMPULSE_CHANCE / len(demand.IMPULSE) * _choice(products, want, seed, index)
    return out


def _part_of_day(hour: int) -> int:
    return 0 if 6 <= hour < 11 else 1 if 11 <= hour < 17 else 2 if 17 <= hour < 22 else 3


def store_arrivals(config: DesConfig, day: date, hour: int) -> float:
    """Expected arrivals at one store in a local hour (the curve is linear inside it)."""
    daily = config.orders_per_store_day * WEEKDAY_DEMAND[day.weekday()]
    both = HOURLY_DEMAND[hour] + HOURLY_DEMAND[(hour + 1) % 24]
    return daily * both / 2 / sum(HOURLY_DEMAND)


def expected_units(
    config: DesConfig,
    products: Mapping[str, list[Product]],
    skus: Sequence[str],
    *,
    first: date,
    days: int,
    window: tuple[float, float] | None = None,
) -> NDArray[np.float64]:
    """[sku, hour] expected units asked of ONE store over ``days`` local days from
    ``first`` 00:00; hours outside ``window`` (Unix start, end of the demand) are zero."""
    per = units_per_arrival(products, skus, config.seed) * (1 - config.payment_failure_rate)
    tz = ZoneInfo(config.timezone)
    rates = np.zeros(days * 24)
    for d in range(days):
        day = first + timedelta(days=d)
        for h in range(24):
            t0 = datetime.combine(day, time(h), tzinfo=tz).timestamp()
            inside = 1.0
            if window is not None:
                inside = max(0.0, min(t0 + 3600, window[1]) - max(t0, window[0])) / 3600
            if h not in CLOSED_HOURS:
                rates[d * 24 + h] = store_arrivals(config, day, h) * inside
    parts = np.array([_part_of_day(h % 24) for h in range(days * 24)])
    return np.asarray(per[parts].T * rates)
