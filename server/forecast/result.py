"""What a demand forecast is: expected units per series and hour from an origin, with the
totals the replenishment rule and the reports read (``DemandModel.predict`` makes one)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from server.forecast.history import History


@dataclass(frozen=True, eq=False)
class Forecast:
    """Expected units per series (history order) per hour from ``origin_hour``."""

    history: History
    origin_hour: int
    units: NDArray[np.float32]  # [series, horizon hour]

    @property
    def horizon_hours(self) -> int:
        return int(self.units.shape[1])

    @property
    def origin_utc(self) -> datetime:
        return self.history.hour_start_utc(self.origin_hour)

    def total(self, hours: int) -> NDArray[np.float64]:
        if not 0 < hours <= self.horizon_hours:
            raise ValueError(f"horizon is {self.horizon_hours} h; cannot total {hours} h")
        return np.asarray(self.units[:, :hours].sum(axis=1, dtype=np.float64))

    def totals(self) -> Iterator[tuple[str, str, float, float]]:
        """``(store_id, sku_id, next_24h, next_72h)`` per series (needs a 72 h horizon)."""
        t24, t72 = self.total(24), self.total(72)
        h = self.history
        for i in range(h.n_series):
            yield (
                h.stores[int(h.series_store[i])].store_id,
                h.skus[int(h.series_sku[i])].sku_id,
                float(t24[i]),
                float(t72[i]),
            )

    def rows(self) -> Iterator[tuple[str, str, datetime, float]]:
        """``(store_id, sku_id, hour_start UTC, expected units)`` for storage."""
        h = self.history
        stamps = [h.hour_start_utc(self.origin_hour + k) for k in range(self.horizon_hours)]
        for i in range(h.n_series):
            store_id = h.stores[int(h.series_store[i])].store_id
            sku_id = h.skus[int(h.series_sku[i])].sku_id
            for k, u in enumerate(self.units[i].tolist()):
                yield store_id, sku_id, stamps[k], u


def category_totals(forecast: Forecast, hours: Sequence[int] | None = None) -> dict[str, float]:
    """Forecast units per category over the given horizon hour offsets (default: all)."""
    sel = forecast.units if hours is None else forecast.units[:, list(hours)]
    per_series = sel.sum(axis=1, dtype=np.float64)
    out: dict[str, float] = {}
    for cat, v in zip(forecast.history.series_categories(), per_series.tolist(), strict=True):
        out[cat] = out.get(cat, 0.0) + v
    return out
