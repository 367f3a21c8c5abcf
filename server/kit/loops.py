"""Every background loop the API process runs, each under its own Redis lease."""

from __future__ import annotations

from fastapi.datastructures import State

from server.delivery.worker import dispatch_all
from server.events.relay import relay_once
from server.flash.service import tick as flash_tick
from server.forecast.daily import run_daily_job
from server.inventory.worker import inventory_loops
from server.kit.background import LeasedLoop
from server.kit.config import Settings
from server.kit.db import transaction
from server.ops.worker import evaluate_all
from server.orders.service import cancel_unpaid


def background_loops(settings: Settings, state: State) -> list[LeasedLoop]:
    return [
        *inventory_loops(settings, state.engine, state.sessions, state.redis, state.clock),
        LeasedLoop(
            state.redis,
            "outbox-relay",
            settings.relay_interval_s,
            lambda: relay_once(state.engine, state.redis),
        ),
        LeasedLoop(
            state.redis,
            "dispatcher",
            settings.dispatch_interval_s,
            lambda: dispatch_all(state.sessions, state.redis, state.clock),
        ),
        LeasedLoop(
            state.redis,
            "flash-queues",
            settings.flash_tick_interval_s,
            lambda: flash_tick(state.sessions, state.redis, clock=state.clock, settings=settings),
        ),
        LeasedLoop(
            state.redis,
            "unpaid-orders",
            settings.sweep_interval_s,
            lambda: _cancel_unpaid(settings, state),
        ),
        LeasedLoop(
            state.redis,
            "ops-alerts",
            settings.ops_alert_interval_s,
            lambda: evaluate_all(state.sessions, state.clock),
        ),
        LeasedLoop(
            state.redis,
            "daily-replenishment",
            60.0,
            lambda: run_daily_job(
                settings, state.sessions, state.redis, state.clock, state.database_url
            ),
            lease_ms=30 * 60_000,  # a daily forecast refit may take minutes
        ),
    ]


async def _cancel_unpaid(settings: Settings, state: State) -> int:
    async with transaction(state.sessions) as session:
        return await cancel_unpaid(
            session, state.redis, now=state.clock.now(), window_s=settings.payment_window_s
        )
