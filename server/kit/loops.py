"""Every background loop the API process runs, each under its own Redis lease."""

from __future__ import annotations

from server.delivery.dispatcher import DispatchPolicy
from server.delivery.worker import dispatch_all
from server.events.relay import relay_once
from server.flash.tick import tick as flash_tick
from server.forecast.daily import run_daily_job
from server.forecast.rollup import rollup_sales
from server.inventory.worker import inventory_loops
from server.kit.background import LeasedLoop
from server.kit.resources import Resources
from server.ops.worker import evaluate_all
from server.orders.flows import settle_unpaid
from server.payments.refunds import pay_refunds


def background_loops(resources: Resources) -> list[LeasedLoop]:
    settings, clock = resources.settings, resources.clock
    engine, sessions, redis = resources.engine, resources.sessions, resources.redis
    return [
        *inventory_loops(settings, engine, sessions, redis, clock),
        LeasedLoop(
            redis,
            "outbox-relay",
            settings.relay_interval_s,
            lambda: relay_once(engine, redis),
        ),
        LeasedLoop(
            redis,
            "dispatcher",
            settings.dispatch_interval_s,
            lambda: dispatch_all(sessions, redis, clock, policy=DispatchPolicy.of(settings)),
        ),
        LeasedLoop(
            redis,
            "flash-queues",
            settings.flash_tick_interval_s,
            lambda: flash_tick(sessions, redis, clock=clock, settings=settings),
        ),
        LeasedLoop(
            redis,
            "unpaid-orders",
            settings.sweep_interval_s,
            lambda: settle_unpaid(
                sessions,
                redis,
                gateway=resources.payments,
                now=clock.now(),
                window_s=settings.payment_window_s,
            ),
        ),
        LeasedLoop(
            redis,
            "refund-payouts",
            settings.sweep_interval_s,
            lambda: pay_refunds(sessions, gateway=resources.payments, now=clock.now()),
        ),
        LeasedLoop(
            redis,
            "ops-alerts",
            settings.ops_alert_interval_s,
            lambda: evaluate_all(sessions, clock),
        ),
        LeasedLoop(
            redis,
            "sales-rollup",
            60.0,
            lambda: rollup_sales(sessions, redis, clock),
        ),
        LeasedLoop(
            redis,
            "daily-replenishment",
            60.0,
            lambda: run_daily_job(settings, sessions, redis, clock, resources.database_url),
            lease_ms=30 * 60_000,  # a daily forecast refit may take minutes
        ),
    ]
