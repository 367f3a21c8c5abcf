"""The methods the evaluation runs beside qc's model, all on daily totals per series.

Every method is ``(OriginInput) -> [series, lead day]`` expected units for the three local
days after a midnight origin (24 h = lead day 0, 72 h = days 0..2). They see only the days
before the origin, and the factors as they were known at the origin (weather forecast,
fixtures, sale calendar).

* ``seasonal naive``: the same weekday last week.
* ``4-week average``: the mean of the same weekday over the last four weeks.
* ``seasonal ES``: statsforecast's ``SeasonalExponentialSmoothingOptimized`` (weekly season)
  per series on the last 56 days. (AutoETS took 460 s for 1,600 series on this machine:
  too slow for 12 origins; the optimised seasonal ES is its fast sibling.)
* ``LightGBM``: one global model (tweedie) on daily rows: last day, 7/28-day means,
  same-weekday mean of 4 weeks, day of week, lead, category, store, rain forecast, match,
  sale, holiday, product age, share of censored hours last week.

statsforecast, pandas and lightgbm are the optional ``forecast-eval`` extra; a missing one
raises :class:`MissingExtra` naming the install command.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from server.forecast.factors import RAINY_DAY_MM, ExternalFactors, WeatherDay, build_calendar
from server.forecast.history import HOURS_PER_DAY, History

LEADS = 3
INSTALL = "pip install 'qc[forecast-eval]'  (statsforecast, lightgbm, pandas)"


class MissingExtra(RuntimeError):
    def __init__(self, package: str) -> None:
        super().__init__(f"the {package} baseline needs the forecast-eval extra: {INSTALL}")


@dataclass(frozen=True, eq=False)
class OriginInput:
    history: History  # censored hours already filled; use only days before origin_day
    factors: ExternalFactors  # weather after the origin as forecast
    origin_day: int  # index of the first forecast day
    daily: NDArray[np.float64]  # [series, day] units per local day (the history's)


def daily_totals(units: NDArray[Any]) -> NDArray[np.float64]:
    n, hours = units.shape
    return np.asarray(
        units.reshape(n, hours // HOURS_PER_DAY, HOURS_PER_DAY).sum(axis=2, dtype=np.float64)
    )


def seasonal_naive(inp: OriginInput) -> NDArray[np.float64]:
    d = inp.origin_day
    return inp.daily[:, d - 7 : d - 7 + LEADS].copy()


def four_week_average(inp: OriginInput) -> NDArray[np.float64]:
    d = inp.origin_day
    weeks = [inp.daily[:, d - 7 * w : d - 7 * w + LEADS] for w in range(1, 5) if d - 7 * w >= 0]
    return np.asarray(np.mean(weeks, axis=0))


def seasonal_es(inp: OriginInput) -> NDArray[np.float64]:
    try:
        import pandas as pd
        from statsforecast import StatsForecast
        from statsforecast.models import SeasonalExponentialSmoothingOptimized
    except ImportError:
        raise MissingExtra("statsforecast") from None
    d = inp.origin_day
    lo = max(0, d - 56)
    y = inp.daily[:, lo:d]
    n, t = y.shape
    frame = pd.DataFrame(
        {"unique_id": np.repeat(np.arange(n), t), "ds": np.tile(np.arange(t), n), "y": y.ravel()}
    )
    model = SeasonalExponentialSmoothingOptimized(season_length=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=frame, h=LEADS)
    values = fc.sort_values(["unique_id", "ds"]).iloc[:, -1].to_numpy(dtype=np.float64)
    return np.asarray(np.clip(values.reshape(n, LEADS), 0.0, None))


# --------------------------------------------------------------------------- LightGBM

_LGB_FEATURES = (
    "last1",
    "mean7",
    "mean28",
    "sdow4",
    "dow",
    "lead",
    "category",
    "store",
    "rain_mm",
    "match",
    "flash",
    "holiday",
    "age",
    "censored7",
)


def _day_flags(inp: OriginInput, days: int) -> dict[str, NDArray[np.float64]]:
    """[series, day] exogenous columns over ``days`` days from the history's start."""
    h = inp.history
    cal = build_calendar(inp.factors, stores=h.stores, skus=h.skus, start=h.start, days=days)
    city = np.array([cal.city_index(h.stores[int(s)].city) for s in h.series_store])
    n = h.n_series
    flash = np.zeros((n, days))
    index = h.series_index()
    for key, ds in cal.flash_days.items():
        i = index.get(key)
        if i is not None:
            flash[i, sorted(ds)] = 1.0
    match: NDArray[np.float64] = np.asarray((cal.match_offset >= 0).any(axis=2), dtype=np.float64)
    age = np.full((n, days), 365.0)
    for i in range(n):
        launched = h.skus[int(h.series_sku[i])].launched_on
        if launched is not None:
            age[i] = np.arange(days) - (launched - h.start).days
    cens = np.zeros((n, days))
    if h.censored is not None:
        usable = min(days, h.days)
        cens[:, :usable] = (
            h.censored[:, : usable * HOURS_PER_DAY].reshape(n, usable, 24).mean(axis=2)
        )
    return {
        "rain_mm": cal.rain_mm[city].astype(np.float64),
        "match": match[city],
        "holiday": cal.holiday[city].astype(np.float64),
        "flash": flash,
        "age": age,
        "censored": cens,
    }


def _lgb_rows(
    inp: OriginInput,
    flags: dict[str, NDArray[np.float64]],
    asof: NDArray[np.int64],
    lead: NDArray[np.int64],
    series: NDArray[np.int64],
) -> NDArray[np.float64]:
    y = inp.daily
    cum = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
    target = asof + lead
    h = inp.history
    weekday0 = h.start.weekday()
    sdow = np.mean([y[series, target - 7 * w] for w in range(1, 5)], axis=0)
    cens7 = np.mean([flags["censored"][series, asof - k] for k in range(1, 8)], axis=0)
    cols = [
        y[series, asof - 1],
        (cum[series, asof] - cum[series, asof - 7]) / 7,
        (cum[series, asof] - cum[series, asof - 28]) / 28,
        sdow,
        (target + weekday0) % 7,
        lead,
        _category_codes(h)[series],
        h.series_store[series],
        flags["rain_mm"][series, target],
        flags["match"][series, target],
        flags["flash"][series, target],
        flags["holiday"][series, target],
        np.minimum(flags["age"][series, target], 365.0),
        cens7,
    ]
    return np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)


def _category_codes(h: History) -> NDArray[np.int64]:
    cats = h.series_categories()
    names = sorted(set(cats))
    return np.array([names.index(c) for c in cats], dtype=np.int64)


def lightgbm_global(inp: OriginInput, *, train_days: int = 42) -> NDArray[np.float64]:
    try:
        import lightgbm as lgb
    except ImportError:
        raise MissingExtra("lightgbm") from None
    d = inp.origin_day
    n = inp.history.n_series
    flags = _day_flags(inp, d + LEADS)
    xs, ys = [], []
    for lead in range(LEADS):
        for a in range(max(28, d - train_days), d - lead):
            s = np.arange(n, dtype=np.int64)
            asof, ld = np.full(n, a, dtype=np.int64), np.full(n, lead, dtype=np.int64)
            xs.append(_lgb_rows(inp, flags, asof, ld, s))
            ys.append(inp.daily[:, a + lead])
    if not xs:
        raise ValueError("LightGBM needs 29+ days before the origin")
    params = {
        "objective": "tweedie",
        "tweedie_variance_power": 1.2,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "num_threads": 1,
        "verbose": -1,
        "seed": 0,
    }
    data = lgb.Dataset(
        np.concatenate(xs),
        np.concatenate(ys),
        feature_name=list(_LGB_FEATURES),
        categorical_feature=["category", "store"],
    )
    booster = lgb.train(params, data, num_boost_round=300)
    out = np.empty((n, LEADS))
    s = np.arange(n, dtype=np.int64)
    for lead in range(LEADS):
        x = _lgb_rows(inp, flags, np.full(n, d, dtype=np.int64), np.full(n, lead), s)
        out[:, lead] = booster.predict(x)
    return np.asarray(np.clip(out, 0.0, None))


def weather_as_forecast(factors: ExternalFactors, issued: date, seed: int = 0) -> ExternalFactors:
    """The weather as a forecast issued on local day ``issued`` would have said it: days
    from ``issued`` on are replaced (a rainy/dry call right 85 % of the time on day 0, 5
    points less per day of lead; the amount off by a lognormal factor), earlier days stay
    as observed. Fixtures and sale calendars are known in advance and stay."""
    rng = np.random.default_rng([seed, 97, issued.toordinal()])
    out: list[WeatherDay] = []
    for w in sorted(factors.weather, key=lambda w: (w.day, w.city)):
        lead = (w.day - issued).days
        if lead < 0:
            out.append(w)
            continue
        right = rng.random() < max(0.6, 0.85 - 0.05 * lead)
        rainy = w.rainy if right else not w.rainy
        actual = w.intensity_mm
        if rainy:
            base = actual if actual >= RAINY_DAY_MM else float(rng.gamma(1.2, 10.0)) + RAINY_DAY_MM
            mm = float(base * rng.lognormal(0.0, 0.5))
            mm = max(mm, RAINY_DAY_MM)
        else:
            mm = float(rng.random() * 2.0)
        out.append(WeatherDay(w.city, w.day, round(mm, 1)))
    return ExternalFactors(
        weather=tuple(out),
        events=factors.events,
        flash_sales=factors.flash_sales,
        holiday_dates=factors.holiday_dates,
        city_subdivisions=factors.city_subdivisions,
    )
