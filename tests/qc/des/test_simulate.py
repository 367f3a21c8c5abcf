"""The deterministic simulated day (``qc simulate``): same seed, same figures, idle or
loaded machine; stage times that add up (the levers: test_levers.py)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from qc.des.config import DesConfig
from qc.des.pickers import walk_steps
from qc.des.report import STAGES, DesReport, delivered_stages, stage_times
from qc.des.runner import simulate
from qc.des.stack import Services

# a few minutes of the evening peak at one store: a couple of dozen orders
SHORT = DesConfig(stores=1, hours=0.1, start_hour=19.0, skus=200, customers=20, promise_min=15)


async def _day(services: Any, config: DesConfig) -> DesReport:
    return await simulate(
        Services(services.home, services.database_url, services.redis_url), config
    )


def test_stage_times_are_ordered_and_add_up() -> None:
    # the rider reached the store (at 300) before the bag was packed (at 400)
    moments = [0.0, 1.0, 20.0, 400.0, 300.0, 420.0, 700.0, 745.0]
    stages = stage_times(moments)
    assert len(stages) == len(STAGES)
    assert all(s >= 0 for s in stages)
    assert stages[3] == 0.0  # no wait for a rider: they were there first
    assert sum(stages) == pytest.approx(745.0)


def test_the_s_shaped_walk_is_shorter_than_aisle_order() -> None:
    # two bins in each of aisles A and B, listed as the S-walk takes them (B backwards)
    walk = ["A-01-1", "A-06-4", "B-06-4", "B-01-1"]
    aisle = ["A-01-1", "A-06-4", "B-01-1", "B-06-4"]
    assert walk_steps(walk)[0] < walk_steps(aisle)[0]


@pytest.mark.slow
async def test_same_seed_same_figures_on_an_idle_and_a_loaded_machine(services: Any) -> None:
    idle = await _day(services, SHORT)
    # the second run shares the machine with a process burning a core per CPU
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = await _day(services, SHORT)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert idle.orders_delivered > 5
    assert idle.figures() == loaded.figures()
    assert idle.oversells == 0 and idle.ledger_mismatches == 0


@pytest.mark.slow
async def test_every_delivered_order_has_ordered_stages_summing_to_its_time(
    services: Any,
) -> None:
    report = await _day(services, SHORT)
    rows = delivered_stages(services.database_url, {}, {})
    assert len(rows) == report.orders_delivered > 5
    for _, _, stages in rows:
        assert all(s >= 0 for s in stages)
    totals = sorted(sum(s) for _, _, s in rows)
    assert report.order_to_door_p50_s is not None
    assert totals[0] <= report.order_to_door_p50_s <= totals[-1]
    assert report.stages[STAGES[2]]["p50"]  # picking takes time
