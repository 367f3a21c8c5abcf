"""Every background loop the API process runs, each under its own fenced Redis lease.

The dispatcher, the hold-expiry sweeper, the substitution answers and the reservations'
retention are per store (``ShardedLoop``: the replicas share the stores); the rest are
once per cluster (``LeasedLoop``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from server.delivery import locations, planning
from server.delivery.dispatcher import DispatchPolicy, dispatch_store, replace_lost_riders
from server.events.relay import relay_once
from server.flash.tick import tick as flash_tick
from server.forecast.daily import run_daily_job
from server.forecast.rollup import rollup_sales
from server.inventory.reconcile import store_ids
from server.inventory.retention import purge_store
from server.inventory.sweeper import sweep_store
from server.inventory.worker import inventory_loops
from server.kit.background import LeasedLoop, ShardedLoop
from server.kit.db import transaction
from server.kit.resources import Resources
from server.ops.worker import evaluate_all
from server.orders.unpaid import settle_unpaid
from server.payments.refunds import pay_refunds
from server.picking.consent import expire_offers
from server.stores.models import DarkStore

STORE_LIST_S = 10.0  # the sharded loops re-read the list of stores this often


class Stores:
    """The dark stores' ids, re-read every ``STORE_LIST_S``: the sharded loops' shards."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine, self.ids, self.read_at = engine, list[str](), float("-inf")

    async def __call__(self) -> Sequence[str]:
        if time.monotonic() - self.read_at > STORE_LIST_S:
            self.ids, self.read_at = await store_ids(self.engine), time.monotonic()
        return self.ids


def background_loops(resources: Resources) -> list[LeasedLoop | ShardedLoop]:
    settings, clock = resources.settings, resources.clock
    engine, sessions, redis = resources.engine, resources.sessions, resources.redis
    stores = Stores(engine)
    policy = DispatchPolicy.of(settings)

    async def dispatch(store_id: str) -> None:
        async with transaction(sessions) as session:
            store = await session.get(DarkStore, store_id)
            if store is not None:
                await dispatch_store(
                    session,
                    redis,
                    store=store,
                    now=clock.now(),
                    weights=planning.DEFAULT_WEIGHTS,
                    policy=policy,
                )

    async def lost_riders() -> None:
        async with transaction(sessions) as session:
            await replace_lost_riders(session, redis, now=clock.now())

    return [
        # the sweeper runs per store below, not as one leader over every store
        *(
            loop
            for loop in inventory_loops(settings, engine, sessions, redis, clock)
            if loop.name != "inventory-sweeper"
        ),
        ShardedLoop(
            redis,
            "inventory-sweeper",
            settings.sweep_interval_s,
            stores,
            lambda store_id: sweep_store(sessions, redis, clock, store_id),
        ),
        # reservation rows of holds that ended longer ago than the retention go
        ShardedLoop(
            redis,
            "inventory-retention",
            settings.reservation_purge_interval_s,
            stores,
            lambda store_id: purge_store(
                sessions,
                clock,
                store_id,
                retention_s=settings.reservation_retention_s,
                batch=settings.reservation_purge_batch,
            ),
        ),
        ShardedLoop(redis, "dispatcher", settings.dispatch_interval_s, stores, dispatch),
        # substitution offers nobody answered in time get the store's fallback
        ShardedLoop(
            redis,
            "substitution-answers",
            settings.sweep_interval_s,
            stores,
            lambda store_id: expire_offers(sessions, redis, clock, store_id),
        ),
        LeasedLoop(redis, "lost-riders", settings.dispatch_interval_s, lost_riders),
        locations.history_loop(engine, redis),  # sampled fixes to rider_locations
        LeasedLoop(
            redis,
            "outbox-relay",
            settings.relay_interval_s,
            lambda: relay_once(engine, redis),
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
            longest_run_s=30 * 60.0,  # a daily forecast refit may take minutes
        ),
    ]
