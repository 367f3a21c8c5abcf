"""The seeded replenishment rule as a pure function over stock positions and forecasts, and
the service-level rule that replaces its 1.5x buffer with a demand quantile.

Reorder when ``available < 1.5 x next-24h forecast``. Order up to the 72 h forecast, counting
stock already in transit: ``need = forecast_72h - (available + in_transit)``, capped so that
``available + in_transit + quantity <= max_capacity``, then rounded UP to whole case packs;
if the rounded quantity would overflow capacity it is rounded DOWN instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import nbinom

REORDER_COVER = 1.5  # reorder below 1.5 days (x next-24h forecast) of sellable stock
_EPS = 1e-9  # forecasts are floats: 12.000000001 units must not round up to another case


class Reason(StrEnum):
    ORDER = "order"
    STOCK_COVERS = "stock_covers"  # available >= 1.5 x next-24h forecast
    IN_TRANSIT_COVERS = "in_transit_covers"  # triggered, but stock + in transit >= 72 h need
    NO_ROOM = "no_room"  # triggered, but not even one case pack fits under capacity


@dataclass(frozen=True, slots=True)
class StockPosition:
    store_id: str
    sku_id: str
    available: int
    in_transit: int
    max_capacity: int
    case_pack: int = 1
    unit_cost_paise: int = 0

    def __post_init__(self) -> None:
        for name in ("available", "in_transit", "max_capacity", "unit_cost_paise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{self.store_id}/{self.sku_id}: {name} must be >= 0")
        if self.case_pack < 1:
            raise ValueError(f"{self.store_id}/{self.sku_id}: case_pack must be >= 1")


@dataclass(frozen=True, slots=True)
class Decision:
    store_id: str
    sku_id: str
    triggered: bool
    quantity: int  # units, a whole number of case packs
    cases: int
    order_value_paise: int
    reason: Reason


def decide(position: StockPosition, forecast_24h: float, forecast_72h: float) -> Decision:
    """Apply the rule to one store x SKU."""
    for name, value in (("forecast_24h", forecast_24h), ("forecast_72h", forecast_72h)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{position.store_id}/{position.sku_id}: bad {name} {value!r}")
    p = position
    if not p.available < REORDER_COVER * forecast_24h:
        return _none(p, False, Reason.STOCK_COVERS)
    return _order_up_to(p, forecast_72h)


def _order_up_to(p: StockPosition, target: float) -> Decision:
    """Order ``target - (available + in transit)`` units (the rule has triggered), capped
    under capacity, in whole case packs (rounded down if a full case would overflow)."""
    on_hand_and_coming = p.available + p.in_transit
    need = target - on_hand_and_coming
    if need <= _EPS:
        return _none(p, True, Reason.IN_TRANSIT_COVERS)
    headroom = p.max_capacity - on_hand_and_coming
    want = min(need, float(headroom))
    cases = math.ceil(want / p.case_pack - _EPS) if want > 0 else 0
    if cases * p.case_pack > headroom:
        cases = max(0, headroom) // p.case_pack  # a full case would overflow: round down
    if cases == 0:
        return _none(p, True, Reason.NO_ROOM)
    qty = cases * p.case_pack
    return Decision(p.store_id, p.sku_id, True, qty, cases, qty * p.unit_cost_paise, Reason.ORDER)


def _none(p: StockPosition, triggered: bool, reason: Reason) -> Decision:
    return Decision(p.store_id, p.sku_id, triggered, 0, 0, 0, reason)


def plan(
    positions: Iterable[StockPosition],
    forecasts: Mapping[tuple[str, str], tuple[float, float]],
) -> list[Decision]:
    """Decisions for every position; ``forecasts[(store_id, sku_id)] = (next_24h, next_72h)``.

    A position without a forecast is treated as zero demand (never reordered).
    """
    out: list[Decision] = []
    for p in positions:
        f24, f72 = forecasts.get((p.store_id, p.sku_id), (0.0, 0.0))
        out.append(decide(p, f24, f72))
    return out


# --------------------------------------------------------------------------- service level

SERVICE_LEVEL = 0.95  # the quantile rule's target: P(72 h demand <= stock provided)


def dispersion(daily: NDArray[np.float64]) -> float:
    """Pooled negative-binomial over-dispersion ``phi`` of daily demand (``var = m + phi
    m^2``) from ``[series, day]`` totals of one group (e.g. a category): the spread the
    quantile rule has to cover, day-to-day level noise included."""
    m = daily.mean(axis=1)
    v = daily.var(axis=1, ddof=1) if daily.shape[1] > 1 else np.zeros_like(m)
    denom = float((m**2).sum())
    return max(0.0, float(np.maximum(v - m, 0.0).sum()) / denom) if denom > 0 else 0.0


def demand_quantile(
    mean: ArrayLike, phi: ArrayLike, level: float = SERVICE_LEVEL, *, days: float = 3.0
) -> NDArray[np.float64]:
    """The ``level`` quantile of demand over ``days`` days with expected total ``mean``:
    negative binomial with the daily dispersion ``phi`` summed over independent days
    (``var = mean + phi mean^2 / days``); Poisson where ``phi`` is 0."""
    mu = np.maximum(np.asarray(mean, dtype=np.float64), 1e-9)
    ph = np.broadcast_to(np.asarray(phi, dtype=np.float64), mu.shape)
    r = np.where(ph > 1e-9, days / np.maximum(ph, 1e-9), 1e9)
    return np.asarray(nbinom.ppf(level, r, r / (r + mu)), dtype=np.float64)


def decide_service_level(position: StockPosition, quantile_72h: float) -> Decision:
    """The quantile rule: when stock + in transit is below the 72 h demand quantile for the
    stated service level (``quantile_72h``), order up to it; capacity and case packs as in
    :func:`decide`."""
    if not math.isfinite(quantile_72h) or quantile_72h < 0:
        raise ValueError(f"{position.store_id}/{position.sku_id}: bad quantile {quantile_72h!r}")
    if position.available + position.in_transit >= quantile_72h:
        return _none(position, False, Reason.STOCK_COVERS)
    return _order_up_to(position, quantile_72h)
