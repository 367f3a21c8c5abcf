"""The history a multi-day run of the city's simulation wrote (``qc simulate --days N
--history-out FILE``), as a file the backtest reads (``qc forecast backtest --source sim
--history FILE``).

One ``.npz`` (numpy, compressed): ``start`` (the first local day), ``stores``, ``cities``,
``skus``, ``categories``, and per series (store-major, each store x every SKU) and local
hour: ``units`` (sales_history), ``censored`` (sales_stockout_hours) and ``expected`` (the
simulation's own expected demand, the floor; omitted when not known).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from server.forecast.entities import Sku, Store
from server.forecast.history import History


@dataclass(frozen=True, eq=False)
class SimHistory:
    history: History
    expected: NDArray[np.float32] | None


def grid(
    start: date, stores: list[Store], skus: list[Sku], days: int
) -> tuple[History, dict[tuple[str, str], int]]:
    """An empty history for every store x SKU (store-major) and each series' row."""
    series_store = np.repeat(np.arange(len(stores), dtype=np.int32), len(skus))
    series_sku = np.tile(np.arange(len(skus), dtype=np.int32), len(stores))
    units = np.zeros((len(series_store), days * 24), dtype=np.uint16)
    history = History(
        start,
        tuple(stores),
        tuple(skus),
        series_store,
        series_sku,
        units,
        censored=np.zeros(units.shape, dtype=bool),
    )
    rows = {
        (st.store_id, sk.sku_id): i * len(skus) + k
        for i, st in enumerate(stores)
        for k, sk in enumerate(skus)
    }
    return history, rows


def save(path: str | Path, data: SimHistory) -> None:
    h = data.history
    arrays: dict[str, NDArray[np.generic]] = {
        "start": np.array(h.start.isoformat()),
        "stores": np.array([s.store_id for s in h.stores]),
        "cities": np.array([s.city for s in h.stores]),
        "skus": np.array([k.sku_id for k in h.skus]),
        "categories": np.array([k.category for k in h.skus]),
        "series_store": h.series_store,
        "series_sku": h.series_sku,
        "units": h.units,
        "censored": h.censored if h.censored is not None else np.zeros(h.units.shape, bool),
    }
    if data.expected is not None:
        arrays["expected"] = data.expected.astype(np.float32)
    with open(path, "wb") as f:  # np.savez would append .npz to a name without it
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]


def load(path: str | Path) -> SimHistory:
    try:
        with np.load(path, allow_pickle=False) as z:
            stores = [Store(str(s), str(c)) for s, c in zip(z["stores"], z["cities"], strict=True)]
            skus = [Sku(str(k), str(c)) for k, c in zip(z["skus"], z["categories"], strict=True)]
            history = History(
                date.fromisoformat(str(z["start"])),
                tuple(stores),
                tuple(skus),
                z["series_store"].astype(np.int32),
                z["series_sku"].astype(np.int32),
                z["units"].astype(np.uint16),
                censored=z["censored"].astype(bool),
            )
            expected = z["expected"].astype(np.float32) if "expected" in z.files else None
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a simulation history ({exc})") from None
    return SimHistory(history, expected)
