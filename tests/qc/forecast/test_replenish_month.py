"""The closed-loop month: deterministic, units conserved, and the rules judged by outcome
(with the world's own expected demand as the forecast, so the test runs in seconds; the
month with qc's model is `qc replenish simulate`)."""

from __future__ import annotations

from datetime import date

import pytest

from qc.replenish_sim.month import (
    MINMAX,
    QUANTILE,
    SEED_RULE,
    OracleForecaster,
    World,
    build_world,
    simulate,
)


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, 40, history_days=35, days=8, start=date(2025, 1, 6), seed=5)


def test_the_month_is_deterministic_and_conserves_units(world: World) -> None:
    oracle = OracleForecaster(world)
    a = simulate(world, SEED_RULE, oracle)
    b = simulate(world, SEED_RULE, oracle)
    assert (a.lost, a.stockout_hours, a.thrown_away, a.orders) == (
        b.lost,
        b.stockout_hours,
        b.thrown_away,
        b.orders,
    )
    for outcome in (a, simulate(world, MINMAX, None)):
        assert outcome.sold + outcome.lost == outcome.demand > 0


def test_the_quantile_rule_loses_less_than_the_seed_rule_and_wastes_less_than_min_max(
    world: World,
) -> None:
    oracle = OracleForecaster(world)
    seed_rule = simulate(world, SEED_RULE, oracle)
    quantile = simulate(world, QUANTILE, oracle)
    minmax = simulate(world, MINMAX, None)
    assert quantile.lost < seed_rule.lost
    assert quantile.stockout_hours < seed_rule.stockout_hours
    assert quantile.thrown_away < minmax.thrown_away
    assert quantile.mean_stock < minmax.mean_stock
