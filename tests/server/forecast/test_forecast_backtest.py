"""Rolling-origin backtest: the model must beat seasonal-naive by >= 15 % WAPE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.forecast.backtest import OVERALL, rolling_origins, run_backtest
from server.forecast.estimator import ForecastConfig
from tests.server.forecast.forecast_world import TEST_CONFIG, World


def test_rolling_origins_cover_the_last_two_weeks() -> None:
    # 70 days: origins from day 56 to day 67 (67 + 3 days of horizon = 70)
    assert rolling_origins(70) == [56 * 24, 60 * 24, 63 * 24, 67 * 24]
    with pytest.raises(ValueError):
        rolling_origins(10)


@pytest.mark.slow
def test_model_beats_seasonal_naive_by_15_percent(world: World) -> None:
    report = run_backtest(world.history, world.factors, config=TEST_CONFIG)
    print("\n" + report.format(categories=False))
    assert len(report.origin_hours) == 4
    for horizon in (24, 72):
        m = report.get(horizon)
        assert m.actual_units > 0
        # the headline: per-series units over the horizon, pooled over 4 origins
        assert m.improvement >= 0.15, (
            f"{horizon} h: model {m.model_wape:.3f} vs {m.baseline_wape:.3f}"
        )
        assert abs(m.model_bias) < 0.15
    with pytest.raises(KeyError):  # hourly WAPE is not scored (zero forecasts win it)
        report.get(24, granularity="hourly")
    cats = {m.scope for m in report.metrics if m.scope != OVERALL}
    assert cats == set(world.history.series_categories())
    # per-category sums add up to the overall actuals
    per_cat = sum(
        m.actual_units
        for m in report.metrics
        if m.scope != OVERALL and m.horizon_hours == 72 and m.granularity == "total"
    )
    assert math.isclose(per_cat, report.get(72).actual_units)


def test_backtest_without_refit_scores_the_same_origins(world: World) -> None:
    origins = [60 * 24, 67 * 24]
    quick = ForecastConfig(max_train_rows=50_000, max_iter=40, threads=1)  # mechanics only
    report = run_backtest(
        world.history, world.factors, origins=origins, horizons=(24,), config=quick, refit=False
    )
    m = report.get(24)
    actual = sum(float(world.history.units[:, o : o + 24].sum()) for o in origins)
    assert m.actual_units == actual
    assert np.isfinite(m.model_wape) and m.model_wape < m.baseline_wape
    with pytest.raises(ValueError):
        run_backtest(world.history, world.factors, origins=[69 * 24], config=TEST_CONFIG)
