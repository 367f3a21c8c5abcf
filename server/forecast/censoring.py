"""Censored sales: hours in which the shelf was empty sold less than was asked for.

:func:`impute_censored` replaces the sales of those hours by an estimate of the demand,
so a model fitted on the result does not learn "low demand" from an empty shelf:

    expected[i, t] = level[i] x share[category(i), hour-of-week(t)]

``share`` is the category's hour-of-week profile over its uncensored hours; ``level`` is the
series' uncensored units divided by the share those uncensored hours carry (a ratio
estimator: an SKU out of stock every evening is scaled up by its evening share, not
averaged down). A series with no uncensored hour in the window takes the same SKU's level
in the other stores. Each series' expected units are rounded by their running sum, so the
filled total equals the estimate's total.

Only the hours before ``until_hour`` are read and filled: a backtest imputes as of each
origin, with no look-ahead.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from server.forecast.history import HOURS_PER_DAY, MAX_UNITS, History

HOURS_PER_WEEK = 7 * HOURS_PER_DAY
LEVEL_WINDOW_DAYS = 28


def _hour_of_week(history: History, hours: int) -> NDArray[np.int64]:
    first_dow = history.start.weekday()
    return np.asarray((np.arange(hours) + first_dow * HOURS_PER_DAY) % HOURS_PER_WEEK)


def expected_demand(history: History, *, until_hour: int | None = None) -> NDArray[np.float64]:
    """The estimate above for every cell before ``until_hour`` ([series, hour])."""
    cut = history.hours if until_hour is None else until_hour
    units = history.units[:, :cut].astype(np.float64)
    mask = (
        np.zeros(units.shape, dtype=bool)
        if history.censored is None
        else history.censored[:, :cut].astype(bool)
    )
    seen = ~mask
    how = _hour_of_week(history, cut)
    cats = np.array(history.series_categories())
    names, code = np.unique(cats, return_inverse=True)
    # the category's hour-of-week profile from uncensored hours (mean units per seen hour)
    share = np.zeros((len(names), HOURS_PER_WEEK))
    for c in range(len(names)):
        rows = code == c
        num = np.bincount(how, weights=(units[rows] * seen[rows]).sum(0), minlength=168)
        den = np.bincount(how, weights=seen[rows].sum(0).astype(np.float64), minlength=168)
        prof = np.where(den > 0, num / np.maximum(den, 1), 0.0)
        share[c] = prof / prof.mean() if prof.mean() > 0 else 1.0
    cell_share = share[code][:, how]  # [series, hour]
    lo = max(0, cut - LEVEL_WINDOW_DAYS * HOURS_PER_DAY)
    w_units = (units[:, lo:] * seen[:, lo:]).sum(1)
    w_share = (cell_share[:, lo:] * seen[:, lo:]).sum(1)
    level = np.where(w_share > 0, w_units / np.maximum(w_share, 1e-9), np.nan)
    # a series never seen in the window: the same SKU's mean level over the other stores
    sku = history.series_sku
    sku_sum = np.bincount(sku, weights=np.nan_to_num(w_units), minlength=len(history.skus))
    sku_den = np.bincount(sku, weights=w_share, minlength=len(history.skus))
    sku_level = np.where(sku_den > 0, sku_sum / np.maximum(sku_den, 1e-9), 0.0)
    level = np.where(np.isnan(level), sku_level[sku], level)
    return np.asarray(level[:, None] * cell_share)


def impute_censored(history: History, *, until_hour: int | None = None) -> History:
    """A copy whose censored hours before ``until_hour`` hold the estimated demand (the
    mask is kept, so what was filled stays visible). No mask: the history itself."""
    if history.censored is None or not history.censored.any():
        return history
    cut = history.hours if until_hour is None else until_hour
    mask = history.censored[:, :cut]
    rows = np.flatnonzero(mask.any(axis=1))
    expected = expected_demand(history, until_hour=cut)
    units = history.units.copy()
    for i in rows.tolist():
        cells = np.flatnonzero(mask[i])
        want = expected[i, cells]
        filled = np.diff(np.round(np.cumsum(want)), prepend=0.0)
        # an hour that sold more than the estimate keeps its sales (they were demand)
        units[i, cells] = np.clip(np.maximum(filled, units[i, cells]), 0, MAX_UNITS).astype(
            np.uint16
        )
    return replace(history, units=units)
