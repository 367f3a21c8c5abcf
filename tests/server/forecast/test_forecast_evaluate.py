"""The evaluation: a second source built apart from the model, weather as forecast,
service-level quantiles, and a report with bootstrap intervals over >= 12 origins."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from server.forecast.baselines import (
    INSTALL,
    MissingExtra,
    four_week_average,
    seasonal_naive,
    weather_as_forecast,
)
from server.forecast.eval_sources import second_source
from server.forecast.evaluate import FLOOR, evaluate, spread_origins
from server.forecast.replenish import demand_quantile, dispersion

START = date(2025, 1, 6)


@pytest.fixture(scope="module")
def source():
    return second_source(2, 60, 56, START, seed=3)


def test_the_second_source_censors_sales_and_keeps_the_true_demand(source) -> None:
    h = source.history
    assert h.censored is not None and 0.01 < h.censored.mean() < 0.3
    demand = source.demand.astype(np.int64)
    sales = h.units.astype(np.int64)
    # an empty shelf sells nothing of its own demand: over censored hours the sales fall short
    cens = h.censored
    assert sales[cens].sum() < demand[cens].sum()
    # where nothing was censored and no substitute was bought, sales are the demand
    assert np.array_equal(sales[~cens] >= demand[~cens], np.ones((~cens).sum(), dtype=bool))
    # the floor is the mean the demand was drawn around
    assert abs(demand.sum() / source.expected.sum() - 1) < 0.05
    # new and discontinued SKUs, announced promotions
    assert any(k.launched_on for k in h.skus) and any(k.discontinued_on for k in h.skus)
    assert source.factors.flash_sales


def test_weather_is_forecast_from_the_origin_on(source) -> None:
    issued = date(2025, 2, 10)
    fc = weather_as_forecast(source.factors, issued, seed=1)
    before = {(w.city, w.day): w for w in source.factors.weather if w.day < issued}
    after = {(w.city, w.day): w.rain_mm for w in source.factors.weather if w.day >= issued}
    assert all(before[(w.city, w.day)] == w for w in fc.weather if w.day < issued)
    changed = [w for w in fc.weather if w.day >= issued and after[(w.city, w.day)] != w.rain_mm]
    assert changed  # the future is not handed over as it fell
    assert fc == weather_as_forecast(source.factors, issued, seed=1)  # deterministic


def test_the_quantile_covers_the_stated_service_level() -> None:
    rng = np.random.default_rng(0)
    mean, phi = 6.0, 0.4
    r = 3 / phi
    draws = rng.negative_binomial(r, r / (r + mean), 200_000)
    q = float(demand_quantile(mean, phi, 0.95, days=3))
    assert 0.94 <= (draws <= q).mean() <= 0.97
    assert float(demand_quantile(mean, 0.0, 0.95)) == 10.0  # Poisson(6): 95 % at 10
    daily = rng.negative_binomial(1 / 0.5, (1 / 0.5) / (1 / 0.5 + 4.0), (400, 60))
    assert abs(dispersion(daily.astype(np.float64)) - 0.5) < 0.08


def test_the_report_scores_every_method_with_intervals_over_12_origins(source) -> None:
    origins = spread_origins(source.history.days, 12)
    assert len(origins) == 12
    methods = {"seasonal naive": seasonal_naive, "4-week average": four_week_average}
    report = evaluate(source, origins=origins, methods=methods, boot=200)
    assert len(report.origin_dates) == 12
    names = [r.method for r in report.rows]
    assert names == ["seasonal naive", "4-week average", FLOOR]
    for name in names:
        for h in (1, 3):
            w = report.value(name, h)
            lo, hi = report.interval(name, h)
            assert lo <= w <= hi and hi - lo < 0.5 * w
    # the floor (true expected demand) beats both baselines, outside the paired interval
    lo, hi = report.interval("4-week average", 3, minus=FLOOR)
    assert lo > 0
    assert report.value(FLOOR, 3) < report.value("4-week average", 3)
    # the mean rule runs short about half the time; the 95 % quantile far less often
    assert report.value(FLOOR, 3, "short_f") > 0.3
    assert report.value(FLOOR, 3, "short_q") < 0.12
    table = report.format()
    assert "WAPE 72h [CI]" in table and "hourly" not in table.lower()


def test_a_missing_extra_names_the_install_command() -> None:
    assert "qc[forecast-eval]" in str(MissingExtra("lightgbm")) and "pip install" in INSTALL
