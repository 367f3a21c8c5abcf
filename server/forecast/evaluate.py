"""An evaluation that can tell methods apart: qc's model beside standard baselines and the
floor (the source's own expected demand), at >= 12 rolling midnight origins, with
bootstrap confidence intervals over the origins.

Scored per series on horizon totals (24 h = the first local day, 72 h = three days),
pooled over origins:

* ``WAPE`` = sum |A - F| / sum A, and ``MAE`` per series;
* ``RMSSE`` (M5): per series sqrt(mean daily squared error / mean squared day-to-day change
  over the 56 days before the origin), averaged with weights = units of the last 28 days;
* service, matched to the reorder rules: ``short@F`` = share of live series whose 72 h
  demand exceeded the seed rule's order-up-to level (the 72 h mean forecast), ``short@q``
  = the same for the quantile rule (the 95 % negative-binomial quantile around the
  forecast, dispersion per category from the last 28 days), and ``stock/A`` = units that
  rule provides per unit demanded (what the service costs).

Hourly WAPE is not reported: 96 % of series-hours are zero, so forecasting zero wins it.

At each origin every method sees the same input: the history before the origin with its
censored (stock-out) hours filled by :func:`impute_censored`, the fixtures and sale
calendar, and the weather **as forecast** at the origin
(:func:`baselines.weather_as_forecast`). Actuals ``A`` are the demand: the sales where
nothing was censored, the drawn demand of a synthetic source (before the shelf).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from numpy.typing import NDArray

from server.forecast import baselines
from server.forecast.baselines import LEADS, OriginInput, daily_totals
from server.forecast.censoring import impute_censored
from server.forecast.estimator import DemandModel, ForecastConfig
from server.forecast.factors import ExternalFactors
from server.forecast.history import HOURS_PER_DAY, History
from server.forecast.replenish import SERVICE_LEVEL, demand_quantile, dispersion

QC = "qc model"
FLOOR = "floor (true expected)"
Method = Callable[[OriginInput], NDArray[np.float64]]
HORIZONS = (1, 3)  # lead days: 24 h and 72 h
_STATS = ("abs", "act", "n", "rmsse_num", "rmsse_w", "short_f", "short_q", "live", "stock")


@dataclass(frozen=True, eq=False)
class Source:
    name: str
    history: History  # sales (with the censored mask if any)
    factors: ExternalFactors
    demand: NDArray[np.uint16] | None = None  # true demand per hour; None: the sales
    expected: NDArray[np.float32] | None = None  # the floor; None: not known (real data)

    @property
    def target_daily(self) -> NDArray[np.float64]:
        return daily_totals(self.history.units if self.demand is None else self.demand)


def qc_method(config: ForecastConfig | None) -> Method:
    def run(inp: OriginInput) -> NDArray[np.float64]:
        o = inp.origin_day * HOURS_PER_DAY
        model = DemandModel(config).fit(inp.history, inp.factors, until_hour=o)
        fc = model.predict(inp.history, inp.factors, origin_hour=o, horizon_hours=72)
        return daily_totals(fc.units)

    return run


def default_methods(config: ForecastConfig | None) -> dict[str, Method]:
    return {
        QC: qc_method(config),
        "seasonal naive": baselines.seasonal_naive,
        "4-week average": baselines.four_week_average,
        "seasonal ES (statsforecast)": baselines.seasonal_es,
        "LightGBM global": baselines.lightgbm_global,
    }


def spread_origins(days: int, count: int = 12, *, first: int | None = None) -> list[int]:
    """``count`` origin days, evenly spread, the last leaving 3 days of horizon; the first
    after 8 weeks of history when there is room (4 for the shortest)."""
    last = days - LEADS
    lo = first if first is not None else max(35, last - 2 * count)
    if lo < 29 or last < lo:
        raise ValueError(f"{days} days is too short for {count} origins (need 32+ days)")
    picks = np.unique(np.round(np.linspace(lo, last, count)).astype(int))
    return [int(d) for d in picks]


@dataclass
class Row:
    method: str
    per_origin: dict[int, NDArray[np.float64]] = field(default_factory=dict)  # h -> [o, stat]
    seconds: float = 0.0


@dataclass(frozen=True)
class Report:
    source: str
    series: int
    origin_dates: tuple[date, ...]
    rows: tuple[Row, ...]
    ci: tuple[float, float]
    boot: int
    seed: int

    def _stat(self, row: Row, h: int, idx: NDArray[np.intp] | None = None) -> dict[str, float]:
        s = row.per_origin[h] if idx is None else row.per_origin[h][idx]
        tot = dict(zip(_STATS, s.sum(axis=0).tolist(), strict=True))
        return {
            "wape": tot["abs"] / tot["act"] if tot["act"] else float("nan"),
            "mae": tot["abs"] / tot["n"],
            "rmsse": tot["rmsse_num"] / tot["rmsse_w"] if tot["rmsse_w"] else float("nan"),
            "short_f": tot["short_f"] / tot["live"] if tot["live"] else float("nan"),
            "short_q": tot["short_q"] / tot["live"] if tot["live"] else float("nan"),
            "stock": tot["stock"] / tot["act"] if tot["act"] else float("nan"),
        }

    def value(self, method: str, h: int, stat: str = "wape") -> float:
        return self._stat(self._row(method), h)[stat]

    def _row(self, method: str) -> Row:
        return next(r for r in self.rows if r.method == method)

    def interval(
        self, method: str, h: int, *, minus: str | None = None, stat: str = "wape"
    ) -> tuple[float, float]:
        """Bootstrap interval over origins of ``stat`` (or of ``stat(method) -
        stat(minus)``, paired: the same resampled origins for both)."""
        rng = np.random.default_rng(self.seed)
        n = len(self.origin_dates)
        row, other = self._row(method), self._row(minus) if minus else None
        vals = []
        for _ in range(self.boot):
            idx = rng.integers(0, n, n)
            v = self._stat(row, h, idx)[stat]
            if other is not None:
                v -= self._stat(other, h, idx)[stat]
            vals.append(v)
        lo, hi = np.nanpercentile(vals, [100 * self.ci[0], 100 * self.ci[1]])
        return float(lo), float(hi)

    def format(self) -> str:
        lvl = f"{self.ci[1] - self.ci[0]:.0%}"
        head = (
            f"source: {self.source}  {self.series:,} series, {len(self.origin_dates)} origins "
            f"{self.origin_dates[0]}..{self.origin_dates[-1]}, {lvl} bootstrap CI over origins"
        )
        cols = (
            f"{'method':<28} {'WAPE 24h [CI]':>20} {'WAPE 72h [CI]':>20} {'MAE 72h':>8} "
            f"{'RMSSE 72h':>9} {'short@F':>8} {'short@q95':>9} {'stock/A':>8} "
            f"{'72h vs qc [CI]':>21} {'s':>6}"
        )
        lines = [head, cols]
        has_qc = any(r.method == QC for r in self.rows)
        for r in self.rows:
            s1, s3 = self._stat(r, 1), self._stat(r, 3)
            c1, c3 = self.interval(r.method, 1), self.interval(r.method, 3)
            diff = "-"
            if has_qc and r.method != QC:
                d = s3["wape"] - self.value(QC, 3)
                lo, hi = self.interval(r.method, 3, minus=QC)
                diff = f"{d:+.3f} [{lo:+.3f},{hi:+.3f}]"
            lines.append(
                f"{r.method:<28} {s1['wape']:.3f} [{c1[0]:.3f},{c1[1]:.3f}] "
                f"{s3['wape']:.3f} [{c3[0]:.3f},{c3[1]:.3f}] {s3['mae']:>8.2f} "
                f"{s3['rmsse']:>9.3f} {s3['short_f']:>8.1%} {s3['short_q']:>9.1%} "
                f"{s3['stock']:>8.2f} {diff:>21} {r.seconds:>6.0f}"
            )
        return "\n".join(lines)


def evaluate(
    source: Source,
    *,
    origins: Sequence[int] | None = None,
    methods: Mapping[str, Method] | None = None,
    config: ForecastConfig | None = None,
    seed: int = 0,
    boot: int = 1000,
    progress: Callable[[str], None] | None = None,
    impute: bool = True,
) -> Report:
    """Run every method (and the floor, if the source has one) at every origin day.
    ``impute=False`` hands the methods the raw censored sales (to measure what the
    imputation is worth)."""
    history = source.history
    days = origins if origins is not None else spread_origins(history.days)
    methods = dict(methods if methods is not None else default_methods(config))
    if source.expected is not None:
        floor_daily = daily_totals(source.expected)
        methods[FLOOR] = lambda inp: floor_daily[:, inp.origin_day : inp.origin_day + LEADS]
    target = source.target_daily
    rows = {name: Row(name) for name in methods}
    per: dict[tuple[str, int], list[NDArray[np.float64]]] = {
        (m, h): [] for m in methods for h in HORIZONS
    }
    for d in days:
        if d + LEADS > history.days or d < 29:
            raise ValueError(f"origin day {d} leaves no room (history {history.days} days)")
        filled = impute_censored(history, until_hour=d * HOURS_PER_DAY) if impute else history
        issued = history.day_of(d * HOURS_PER_DAY)
        inp = OriginInput(
            history=filled,
            factors=baselines.weather_as_forecast(source.factors, issued, seed),
            origin_day=d,
            daily=daily_totals(filled.units),
        )
        context = _OriginContext(inp, target)
        for name, method in methods.items():
            t0 = time.perf_counter()
            fc = method(inp)
            rows[name].seconds += time.perf_counter() - t0
            for h in HORIZONS:
                per[name, h].append(context.stats(fc, h))
        if progress is not None:
            progress(f"{source.name}: origin {issued} done")
    for (name, h), stats in per.items():
        rows[name].per_origin[h] = np.array(stats)
    return Report(
        source=source.name,
        series=history.n_series,
        origin_dates=tuple(history.day_of(d * HOURS_PER_DAY) for d in days),
        rows=tuple(rows.values()),
        ci=(0.025, 0.975),
        boot=boot,
        seed=seed,
    )


class _OriginContext:
    """What every method is scored against at one origin."""

    def __init__(self, inp: OriginInput, target: NDArray[np.float64]) -> None:
        d = inp.origin_day
        past = inp.daily[:, max(0, d - 56) : d]
        self.actual = target[:, d : d + LEADS]
        self.scale = (np.diff(past, axis=1) ** 2).mean(axis=1)
        self.weight = inp.daily[:, d - 28 : d].sum(axis=1)
        self.live = (self.weight > 0) | (self.actual.sum(axis=1) > 0)
        cats = np.array(inp.history.series_categories())
        last28 = inp.daily[:, d - 28 : d]
        self.phi = np.zeros(inp.history.n_series)
        for c in np.unique(cats):
            m = (cats == c) & (last28.sum(axis=1) > 0)
            self.phi[cats == c] = dispersion(last28[m]) if m.any() else 0.0

    def stats(self, fc: NDArray[np.float64], h: int) -> NDArray[np.float64]:
        a, f = self.actual[:, :h], np.asarray(fc, dtype=np.float64)[:, :h]
        at, ft = a.sum(axis=1), f.sum(axis=1)
        ok = self.scale > 0
        rmsse = np.sqrt(((a - f) ** 2).mean(axis=1)[ok] / self.scale[ok])
        q = demand_quantile(ft, self.phi, SERVICE_LEVEL, days=h)
        live = self.live
        return np.array(
            [
                np.abs(at - ft).sum(),
                at.sum(),
                at.size,
                (rmsse * self.weight[ok]).sum(),
                self.weight[ok].sum(),
                (at > ft)[live].sum(),
                (at > q)[live].sum(),
                live.sum(),
                q[live].sum(),
            ]
        )
