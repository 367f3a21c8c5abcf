"""Rolling-origin backtest: the model against seasonal-naive (same hour last week), on the
stored history (``runs.backtest``). The full evaluation with every baseline, RMSSE, service
levels and confidence intervals is :mod:`server.forecast.evaluate` (``qc forecast
backtest``).

At each origin the model is refitted on the hours before it (``refit=True``) and both
forecasts are scored on the held-out hours after it. WAPE = sum|actual - forecast| /
sum(actual); bias = (sum forecast - sum actual) / sum(actual); both pooled over origins.

Each series' units over the whole horizon are compared (what replenishment consumes).
Hourly WAPE is not scored: 96 % of series-hours are zero, so forecasting zero wins it.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from server.forecast.factors import ExternalFactors
from server.forecast.history import HOURS_PER_DAY, History

if TYPE_CHECKING:  # scikit-learn (and pandas with it) only when a model is fitted:
    # the API imports this module, its workers need neither (~100 MiB each)
    from server.forecast.estimator import DemandModel, ForecastConfig

OVERALL = "overall"
GRANULARITIES = ("total",)


def seasonal_naive(history: History, origin_hour: int, horizon_hours: int) -> NDArray[np.float32]:
    """Same hour last week: the baseline every model here must beat."""
    lead = np.arange(horizon_hours)
    src = origin_hour + lead - 7 * HOURS_PER_DAY
    if src.min() < 0 or src.max() >= origin_hour:
        raise ValueError("seasonal naive needs a week of history and a horizon <= 7 days")
    return history.units[:, src].astype(np.float32)


@dataclass(frozen=True, slots=True)
class Metric:
    scope: str  # OVERALL or a category
    horizon_hours: int
    granularity: str  # "total" (horizon totals per series)
    actual_units: float
    model_wape: float
    baseline_wape: float
    model_bias: float
    baseline_bias: float

    @property
    def improvement(self) -> float:
        """Relative WAPE reduction of the model over the baseline (0.15 = 15 % better)."""
        if not self.baseline_wape or math.isnan(self.baseline_wape):
            return math.nan
        return 1.0 - self.model_wape / self.baseline_wape


@dataclass(frozen=True)
class BacktestReport:
    origin_hours: tuple[int, ...]
    origin_dates: tuple[date, ...]
    metrics: tuple[Metric, ...]
    fit_seconds: float
    predict_seconds: float

    def get(
        self, horizon_hours: int, *, scope: str = OVERALL, granularity: str = "total"
    ) -> Metric:
        for m in self.metrics:
            if (m.scope, m.horizon_hours, m.granularity) == (scope, horizon_hours, granularity):
                return m
        raise KeyError((scope, horizon_hours, granularity))

    def format(self, *, categories: bool = True) -> str:
        lines = [
            "origins: "
            + ", ".join(d.isoformat() for d in self.origin_dates)
            + f"  (fit {self.fit_seconds:.1f} s, predict {self.predict_seconds:.1f} s)",
            f"{'scope':<22} {'h':>3} {'gran':<6} {'actual':>10} {'WAPE model':>10} "
            f"{'naive':>7} {'better':>7} {'bias model':>10} {'naive':>7}",
        ]
        for m in self.metrics:
            if not categories and m.scope != OVERALL:
                continue
            lines.append(
                f"{m.scope:<22} {m.horizon_hours:>3} {m.granularity:<6} {m.actual_units:>10.0f} "
                f"{m.model_wape:>10.3f} {m.baseline_wape:>7.3f} {m.improvement:>7.1%} "
                f"{m.model_bias:>+10.3f} {m.baseline_bias:>+7.3f}"
            )
        return "\n".join(lines)


def rolling_origins(
    history_days: int, *, count: int = 4, window_days: int = 14, max_horizon_hours: int = 72
) -> list[int]:
    """``count`` local-midnight origins spread over the last ``window_days`` days, each
    leaving room for the longest horizon inside the history."""
    last = history_days - math.ceil(max_horizon_hours / HOURS_PER_DAY)
    first = history_days - window_days
    if first < 8 or last < first:
        raise ValueError("history too short for the requested backtest window")
    days = np.unique(np.round(np.linspace(first, last, count)).astype(int))
    return [int(d) * HOURS_PER_DAY for d in days]


def run_backtest(
    history: History,
    factors: ExternalFactors,
    *,
    origins: Sequence[int] | None = None,
    horizons: Sequence[int] = (24, 72),
    config: ForecastConfig | None = None,
    refit: bool = True,
) -> BacktestReport:
    """Score the model and seasonal-naive at each origin (hour indices into ``history``)."""
    horizon = max(horizons)
    origin_list = (
        list(origins)
        if origins is not None
        else rolling_origins(history.days, max_horizon_hours=horizon)
    )
    for o in origin_list:
        if o + horizon > history.hours:
            raise ValueError(f"origin hour {o} + {horizon} h runs past the history")
    cats = np.array(history.series_categories())
    names = sorted(set(cats.tolist()))
    code = np.searchsorted(names, cats)
    # sums[(horizon, granularity)] -> [category, (abs err model, abs err naive, A, F, B)]
    sums = {(h, g): np.zeros((len(names), 5)) for h in horizons for g in GRANULARITIES}
    fit_s = predict_s = 0.0
    model: DemandModel | None = None
    for o in origin_list:
        t = time.perf_counter()
        if model is None or refit:
            from server.forecast.estimator import DemandModel  # see TYPE_CHECKING above

            model = DemandModel(config).fit(history, factors, until_hour=o)
        t2 = time.perf_counter()
        fc = model.predict(history, factors, origin_hour=o, horizon_hours=horizon).units
        fit_s += t2 - t
        predict_s += time.perf_counter() - t2
        naive = seasonal_naive(history, o, horizon)
        actual = history.units[:, o : o + horizon].astype(np.float64)
        for h in horizons:
            a, f, b = actual[:, :h], fc[:, :h].astype(np.float64), naive[:, :h].astype(np.float64)
            totals = (x.sum(axis=1, keepdims=True) for x in (a, f, b))
            _accumulate(sums[h, "total"], code, *totals)
    metrics: list[Metric] = []
    for (h, g), s in sums.items():
        metrics.append(_metric(OVERALL, h, g, s.sum(axis=0)))
        metrics.extend(_metric(n, h, g, s[c]) for c, n in enumerate(names))
    metrics.sort(key=lambda m: (m.scope != OVERALL, m.scope, m.granularity, m.horizon_hours))
    return BacktestReport(
        origin_hours=tuple(origin_list),
        origin_dates=tuple(history.day_of(o) for o in origin_list),
        metrics=tuple(metrics),
        fit_seconds=fit_s,
        predict_seconds=predict_s,
    )


def _accumulate(
    acc: NDArray[np.float64],
    code: NDArray[np.intp],
    a: NDArray[np.float64],
    f: NDArray[np.float64],
    b: NDArray[np.float64],
) -> None:
    per_series = np.stack(
        [np.abs(a - f).sum(1), np.abs(a - b).sum(1), a.sum(1), f.sum(1), b.sum(1)], axis=1
    )
    np.add.at(acc, code, per_series)


def _metric(scope: str, h: int, g: str, s: NDArray[np.float64]) -> Metric:
    err_m, err_b, a, f, b = (float(x) for x in s)
    if a <= 0:
        nan = math.nan
        return Metric(scope, h, g, a, nan, nan, nan, nan)
    return Metric(scope, h, g, a, err_m / a, err_b / a, (f - a) / a, (b - a) / a)


def main(argv: list[str] | None = None) -> None:
    """Backtest on a generated history: ``python -m server.forecast.backtest``."""
    from server.forecast.entities import make_catalogue, make_stores
    from server.forecast.factors import synthetic_factors
    from server.forecast.history import generate_history

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=70)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 7, 15))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-refit", action="store_true")
    parser.add_argument("--categories", action="store_true")
    args = parser.parse_args(argv)
    stores = make_stores(args.stores)
    skus = make_catalogue(args.skus, start=args.start, days=args.days, seed=args.seed)
    factors = synthetic_factors(stores, skus, args.start, args.days, args.seed)
    history = generate_history(
        stores, skus, start=args.start, days=args.days, factors=factors, seed=args.seed
    )
    report = run_backtest(history, factors, refit=not args.no_refit)
    print(report.format(categories=args.categories))


if __name__ == "__main__":
    main()
