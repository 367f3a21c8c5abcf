"""Forecast runs and backtests on the stored history: read the history and factors, fit
the estimator, write ``demand_forecasts`` (or score it against seasonal-naive).

Synchronous and CPU-bound (a fit takes seconds to a minute): it takes a database URL,
holds no transaction while fitting, and runs in a worker thread when the server calls it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg

from server.forecast.backtest import BacktestReport, rolling_origins, run_backtest
from server.forecast.censoring import impute_censored
from server.forecast.history import HOURS_PER_DAY, IST, day_start_utc, ist_midnight
from server.forecast.inputs import (
    FACTOR_LEAD_DAYS,
    HORIZON_HOURS,
    StoreSelection,
    load_entities,
    read_factors,
)
from server.forecast.sales_history import history_bounds, read_history, with_stockouts

if TYPE_CHECKING:  # scikit-learn (and pandas with it) only when a model is fitted:
    # the API imports this module, its workers need neither (~100 MiB each)
    from server.forecast.estimator import ForecastConfig

STALE_AFTER = timedelta(days=1)


class StaleHistory(ValueError):
    """The newest sales hour is more than a day before the origin: the sales roll-up is not
    running (or the history was never loaded past the seed), and a refit would read the
    missing days as zero demand."""


@dataclass(frozen=True)
class ForecastRun:
    forecast_at: datetime
    history_start: date
    history_days: int
    series: int
    train_rows: int
    read_s: float
    fit_s: float
    predict_s: float
    write_s: float

    def describe(self) -> str:
        return (
            f"forecast at {self.forecast_at.astimezone(IST):%Y-%m-%d %H:%M} IST for "
            f"{self.series:,} store x SKU series from {self.history_days} days of history "
            f"(since {self.history_start}): read {self.read_s:.1f} s, fit {self.fit_s:.1f} s "
            f"on {self.train_rows:,} rows, predict {self.predict_s:.1f} s, "
            f"write {self.write_s:.1f} s"
        )


def _check_origin(origin: datetime) -> None:
    if origin.tzinfo is None:
        raise ValueError("origin must be timezone-aware")
    if (origin - ist_midnight(origin)) % timedelta(hours=1):
        raise ValueError(f"origin {origin.isoformat()} is not on an Asia/Kolkata hour")


def run_forecast(
    url: str,
    *,
    origin: datetime,
    days: int = 90,
    config: ForecastConfig | None = None,
    stores: StoreSelection = None,
    skus: StoreSelection = None,
    allow_stale: bool = False,
) -> ForecastRun:
    """Fit the model on up to ``days`` days of history before ``origin`` (an IST hour),
    forecast the next 72 h of every store x SKU and write one ``demand_forecasts`` row per
    series (``forecast_at = origin``, replacing an earlier run at the same origin).

    Refuses (:class:`StaleHistory`) when the newest sales hour is more than a day before
    the origin, unless ``allow_stale``. Censored (stock-out) hours are filled with the
    estimated demand before fitting (:mod:`server.forecast.censoring`)."""
    _check_origin(origin)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        city = load_entities(conn, stores=stores, skus=skus)
        bounds = history_bounds(conn, city, before=origin)
        if bounds is None:
            raise ValueError("no sales history before the origin: run `qc forecast history`")
        newest = bounds[1] + timedelta(hours=1)
        if not allow_stale and origin - newest > STALE_AFTER:
            raise StaleHistory(
                f"the newest sales hour ends {newest.astimezone(IST):%Y-%m-%d %H:%M} IST, "
                f"{(origin - newest) / timedelta(hours=1):.0f} h before the origin "
                f"{origin.astimezone(IST):%Y-%m-%d %H:%M} IST: is the sales roll-up running? "
                "Refusing to refit on missing days read as zero sales"
            )
        origin_day = origin.astimezone(IST).date()
        first_day = max(origin_day - timedelta(days=days), bounds[0].astimezone(IST).date())
        origin_hour = (origin - day_start_utc(first_day)) // timedelta(hours=1)
        n_days = math.ceil(origin_hour / HOURS_PER_DAY)
        history = read_history(conn, city, start=first_day, days=n_days, until=origin)
        history = impute_censored(
            with_stockouts(conn, history, until=origin), until_hour=origin_hour
        )
        drivers = read_factors(
            conn, city, first=first_day, last=origin_day + timedelta(days=FACTOR_LEAD_DAYS)
        )
        conn.rollback()  # end the read snapshot: no transaction stays open while fitting
        t1 = time.perf_counter()
        from server.forecast.estimator import DemandModel  # see TYPE_CHECKING above

        model = DemandModel(config).fit(history, drivers, until_hour=origin_hour)
        t2 = time.perf_counter()
        forecast = model.predict(
            history, drivers, origin_hour=origin_hour, horizon_hours=HORIZON_HOURS
        )
        t3 = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(
                "DELETE FROM demand_forecasts WHERE forecast_at = %s AND store_id = ANY(%s)",
                (origin, city.store_ids),
            )
            with cur.copy(
                "COPY demand_forecasts (store_id, sku_id, forecast_at, next_24h, next_72h) "
                "FROM STDIN"
            ) as copy:
                for store_id, sku_id, f24, f72 in forecast.totals():
                    copy.write_row((store_id, sku_id, origin, f24, f72))
        conn.commit()
        t4 = time.perf_counter()
    return ForecastRun(
        forecast_at=origin,
        history_start=first_day,
        history_days=n_days,
        series=history.n_series,
        train_rows=model.train_rows,
        read_s=t1 - t0,
        fit_s=t2 - t1,
        predict_s=t3 - t2,
        write_s=t4 - t3,
    )


def backtest(
    url: str,
    *,
    days: int = 56,
    origins: int = 4,
    config: ForecastConfig | None = None,
    stores: StoreSelection = None,
    skus: StoreSelection = None,
) -> BacktestReport:
    """Rolling-origin backtest (model vs seasonal-naive, refit at each origin) on the last
    ``days`` whole local days of the stored history."""
    with psycopg.connect(url) as conn:
        city = load_entities(conn, stores=stores, skus=skus)
        bounds = history_bounds(conn, city)
        if bounds is None:
            raise ValueError("no sales history: run `qc forecast history`")
        first_data = bounds[0].astimezone(IST).date()
        # the day after the last row's day: the stored history is taken to cover whole days
        end = bounds[1].astimezone(IST).date() + timedelta(days=1)
        start = max(first_data, end - timedelta(days=days))
        n_days = (end - start).days
        history = read_history(conn, city, start=start, days=n_days)
        drivers = read_factors(conn, city, first=start, last=end)
    return run_backtest(
        history,
        drivers,
        origins=rolling_origins(n_days, count=origins, max_horizon_hours=HORIZON_HOURS),
        config=config,
    )
