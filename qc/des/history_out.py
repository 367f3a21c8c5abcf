"""The history a multi-day run wrote, out of its private database before it goes: the
rolled-up ``sales_history`` and ``sales_stockout_hours`` of the simulated stores, with the
simulation's own expected demand as the floor (:mod:`server.forecast.sim_history`): what
arriving customers ask for (:mod:`qc.des.expected`) times the share of them served."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg

from qc.des.expected import Product, expected_units
from qc.des.world import World
from server.forecast.entities import Sku, Store
from server.forecast.history import HOURS_PER_DAY, MAX_UNITS, day_start_utc
from server.forecast.sim_history import SimHistory, grid, save

_HOUR_S = 3600


def served_share(world: World) -> np.ndarray:
    """[local hour] the share of arriving customers a store served over the run: who is
    refused (no store could reach them within the promise, or they came before opening)
    is not known in advance, so the floor takes the run's own share per hour of day."""
    share = np.ones(HOURS_PER_DAY)
    for hour, counts in world.by_hour.items():
        if counts["arrivals"]:
            share[hour] = 1 - counts["refused"] / counts["arrivals"]
    return share


def export_history(
    database_url: str,
    world: World,
    products: dict[str, list[Product]],
    *,
    window: tuple[float, float],
    path: str | Path,
) -> SimHistory:
    """Write the local days from the run's first through its last (``window``: the Unix
    start and end of its demand; hours outside it are zero, their floor too)."""
    config = world.config
    first = date.fromisoformat(config.date)
    days = math.ceil((config.start_hour + config.span_hours) / HOURS_PER_DAY)
    category = {sku: cat for cat, items in products.items() for sku, _ in items}
    skus = [Sku(k, category[k]) for k in sorted(category)]
    lo, hi = day_start_utc(first), day_start_utc(first + timedelta(days=days))
    with psycopg.connect(database_url) as conn:
        cities: dict[str, str] = dict(
            conn.execute(
                "SELECT s.store_id, c.name FROM dark_stores s JOIN cities c USING (city_id)"
            ).fetchall()
        )
        stores = [Store(s, cities[s]) for s in sorted(world.stores)]
        history, rows = grid(first, stores, skus, days)
        assert history.censored is not None
        for store, sku, at, units in conn.execute(
            "SELECT store_id, sku_id, hour_start, units FROM sales_history "
            "WHERE hour_start >= %s AND hour_start < %s",
            (lo, hi),
        ):
            if (store, sku) in rows:
                t = int((at - lo).total_seconds()) // _HOUR_S
                history.units[rows[store, sku], t] = min(units, MAX_UNITS)
        for store, sku, at in conn.execute(
            "SELECT store_id, sku_id, hour_start FROM sales_stockout_hours "
            "WHERE hour_start >= %s AND hour_start < %s",
            (lo, hi),
        ):
            if (store, sku) in rows:
                history.censored[rows[store, sku], int((at - lo).total_seconds()) // _HOUR_S] = True
    per_store = expected_units(
        config, products, [k.sku_id for k in skus], first=first, days=days, window=window
    )
    per_store *= np.tile(served_share(world), days)
    data = SimHistory(history, np.tile(per_store, (len(stores), 1)).astype(np.float32))
    save(path, data)
    return data
