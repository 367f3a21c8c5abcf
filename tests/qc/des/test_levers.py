"""The levers move the figures the right way, at small scale (a few minutes of the evening
peak at one store, a couple of dozen orders): pushed work is started sooner than polled
work, and the dynamic radius at a 10-minute promise turns far addresses away
(reported as refused demand) so that the orders it serves are at the door sooner."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qc.des.config import DesConfig, Policies
from qc.des.report import DesReport
from qc.des.runner import simulate
from qc.des.stack import Services

SHORT = DesConfig(stores=1, hours=0.15, start_hour=19.0, skus=200, customers=20, promise_min=10)
_runs: dict[str, DesReport] = {}


async def _day(services: Any, name: str, config: DesConfig) -> DesReport:
    if name not in _runs:
        _runs[name] = await simulate(
            Services(services.home, services.database_url, services.redis_url), config
        )
    return _runs[name]


async def test_polling_instead_of_push_makes_work_wait(services: Any) -> None:
    pushed = await _day(services, "all on", SHORT)
    polled = await _day(services, "polling", replace(SHORT, policies=Policies(push=False)))
    wait = "confirmed -> picking started"
    pushed_wait, polled_wait = pushed.stages[wait]["mean"], polled.stages[wait]["mean"]
    assert pushed_wait is not None and polled_wait is not None
    # told at once (2 s) against the first of the idle pickers' 30 s glances
    assert polled_wait > pushed_wait
    assert polled.figures() != pushed.figures()


async def test_the_dynamic_radius_refuses_far_demand_and_serves_the_rest_sooner(
    services: Any,
) -> None:
    on = await _day(services, "all on", SHORT)
    fixed = await _day(
        services, "no dynamic radius", replace(SHORT, policies=Policies(dynamic_radius=False))
    )
    assert fixed.refused_share == 0.0
    assert on.refused_share is not None and on.refused_share > 0.0
    assert on.orders_delivered < fixed.orders_delivered
    assert on.within_10_min is not None and fixed.within_10_min is not None
    assert on.within_10_min >= fixed.within_10_min
    assert on.order_to_door_p90_s is not None and fixed.order_to_door_p90_s is not None
    assert on.order_to_door_p90_s < fixed.order_to_door_p90_s
    assert on.oversells == 0 and on.ledger_mismatches == 0
