"""Multi-day simulation (``qc simulate --days``): the city's nights (hourly sales roll-up,
the 02:00 replenishment job, its orders received before opening), the history it writes
and that history as a backtest source with the simulation's expected demand as its floor."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from qc.des.config import DesConfig
from qc.des.expected import units_per_arrival
from qc.des.runner import simulate
from qc.des.stack import Services
from qc.sim import demand
from server.forecast import baselines
from server.forecast.entities import Sku, Store
from server.forecast.eval_sources import sim_source
from server.forecast.evaluate import FLOOR, evaluate
from server.forecast.history import IST
from server.forecast.sim_history import SimHistory, grid, save


def test_expected_units_per_arrival_match_the_baskets_customers_draw() -> None:
    products = {
        "dairy-bread-eggs": [("M1", "Milk 1L"), ("M2", "Milk 500ml"), ("E1", "Eggs 6")],
        "snacks-munchies": [("S1", "Chips"), ("S2", "Nuts")],
        "bakery": [("B1", "Bread")],
    }
    skus = sorted(sku for items in products.values() for sku, _ in items)
    expected = units_per_arrival(products, skus, seed=1)[0]  # the morning
    rng, drawn, n = random.Random(7), Counter[str](), 40_000
    for _ in range(n):
        _, wants = demand.choose_basket(rng, 8.0)
        for want in wants:
            items = products.get(want.category, [])
            if want.keyword:
                items = [p for p in items if want.keyword.lower() in p[1].lower()] or items
            if items:
                weights = [demand.popularity(1, sku) + 0.01 for sku, _ in items]
                sku = rng.choices(items, weights=weights)[0][0]
                drawn[sku] += demand.quantity(rng, want, 99)
    for i, sku in enumerate(skus):
        assert drawn[sku] / n == pytest.approx(expected[i], rel=0.05, abs=0.002)


# one store across a night: the evening, the 02:00 job, receipts at 05:00, the morning
NIGHT = DesConfig(
    stores=1,
    skus=200,
    customers=20,
    orders_per_store_day=200,
    start_hour=23.0,
    hours=9.0,
    nightly=True,
)


async def test_a_night_replenishes_stock_and_the_next_days_sales_reach_the_history(
    services: Any, tmp_path: Path
) -> None:
    out = tmp_path / "sim.npz"
    config = replace(NIGHT, history_out=str(out))
    report = await simulate(
        Services(services.home, services.database_url, services.redis_url), config
    )
    assert report.oversells == 0 and report.ledger_mismatches == 0
    day2 = date(2026, 3, 3)
    with psycopg.connect(services.database_url) as conn:
        received = conn.execute(
            "SELECT store_id, sku_id, quantity, received_at FROM replenishment_orders "
            "WHERE status = 'RECEIVED'"
        ).fetchall()
        receipts = conn.execute(
            "SELECT count(*) FROM stock_ledger WHERE movement = 'RECEIPT'"
        ).fetchone()
        sales = conn.execute(
            "SELECT hour_start, sum(units) FROM sales_history GROUP BY hour_start"
        ).fetchall()
    # the job planned at 02:00 and the orders were received 3 h later, before opening
    assert received and receipts and receipts[0] >= len(received)
    assert {r[3].astimezone(IST) for r in received} == {datetime(2026, 3, 3, 5, 0, tzinfo=IST)}
    assert report.counters["replenishment_units_received"] == sum(r[2] for r in received)
    # sales of the second day's morning are in the history, hour by hour
    by_hour = {at.astimezone(IST): units for at, units in sales}
    morning = [u for at, u in by_hour.items() if at.date() == day2 and at.hour >= 6]
    assert sum(morning) > 0
    assert report.counters["day 2026-03-03: orders confirmed"] > 0
    # the export holds the same sales, and reads back as a backtest source with a floor
    src = sim_source(out)
    assert src.history.start == date(2026, 3, 2) and src.history.days == 2
    assert int(src.history.units.sum()) == sum(
        u for at, u in by_hour.items() if at.date() in (date(2026, 3, 2), day2)
    )
    assert src.expected is not None and src.expected.shape == src.history.units.shape
    assert src.expected[:, :23].sum() == 0  # before the run started
    assert src.expected[:, 24 + 2 : 24 + 6].sum() == 0  # the stores are closed
    assert src.expected[:, 24 + 7 : 24 + 8].sum() > 0


def test_a_simulation_history_file_is_a_backtest_source_with_its_floor(tmp_path: Path) -> None:
    days, rng = 35, np.random.default_rng(3)
    stores = [Store("S1")]
    skus = [Sku(f"K{i:02d}", "snacks-munchies" if i % 2 else "bakery") for i in range(20)]
    history, _ = grid(date(2026, 3, 2), stores, skus, days)
    expected = np.tile(np.linspace(0.05, 1.0, 20)[:, None], (1, days * 24)).astype(np.float32)
    history.units[:] = rng.poisson(expected)
    path = tmp_path / "sim.npz"
    save(path, SimHistory(history, expected))
    source = sim_source(path)
    assert np.array_equal(source.history.units, history.units)
    methods = {"seasonal naive": baselines.seasonal_naive, "4-week": baselines.four_week_average}
    report = evaluate(source, origins=[29, 31], methods=methods, boot=100)
    assert report.origin_dates[0] == date(2026, 3, 2) + timedelta(days=29)
    # the floor is the demand the file was drawn from: no method beats it
    assert report.value(FLOOR, 3) < min(report.value(m, 3) for m in methods)


def test_the_backtest_takes_a_history_file_only_for_the_sim_source(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qc.forecast_cli import forecast_app

    file = tmp_path / "sim.npz"
    file.write_bytes(b"")
    runner = CliRunner()
    for args in (["--source", "sim"], ["--source", "second", "--history", str(file)]):
        result = runner.invoke(forecast_app, ["backtest", *args])
        assert result.exit_code != 0 and "--source sim" in result.output
    with pytest.raises(ValueError, match="not a simulation history"):
        sim_source(file)
