"""The simulation: every actor an asyncio task in one process, acting only through the
public HTTP API and websockets (``shared.client``, a client per role), on the server's clock.

``Simulation.run`` returns the report, computed from PostgreSQL after the actors stop.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from qc.sim.config import SimConfig
from qc.sim.customers import Customers
from qc.sim.pickers import Picker
from qc.sim.report import Report, build_report, take_snapshot
from qc.sim.riders import Rider
from qc.sim.world import C, Login, World
from server.kit.clock import Clock
from server.seed.generate import DEMO_SECRETS
from shared.aio import cancel_and_wait, wait_event
from shared.client import (
    ApiError,
    CustomerClient,
    ManagerClient,
    PickerClient,
    RiderClient,
)
from shared.enums import Role

log = logging.getLogger("qc.sim")

MANAGER = "manager.blr"


@dataclass
class Crew:
    customers: list[Login[CustomerClient]] = field(default_factory=list)
    pickers: dict[str, list[Login[PickerClient]]] = field(default_factory=dict)
    riders: list[Login[RiderClient]] = field(default_factory=list)


class Simulation:
    def __init__(
        self,
        base_url: str,
        *,
        clock: Clock,
        database_url: str,
        config: SimConfig | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.database_url = database_url
        self.config = config or SimConfig()
        self.world = World(self.base_url, clock, self.config)
        self.crew = Crew()
        self.report: Report | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False

    # --- who works today ----------------------------------------------------------------
    def _login(self, login: str, role: Role, kind: type[C]) -> Login[C]:
        return Login(login, DEMO_SECRETS[role], self.world.client(kind))

    async def _try(self, login: Login[C]) -> Login[C] | None:
        try:
            await login.fresh(self.clock)
            return login
        except ApiError:
            await login.client.aclose()
            return None  # the seed has fewer people than asked for

    async def setup(self) -> None:
        world, config = self.world, self.config
        async with CustomerClient(self.base_url, timeout=30) as anonymous:
            cursor = None
            while True:
                page = await anonymous.stores(limit=200, cursor=cursor)
                for store in page.items:
                    if store.is_operational:
                        world.add_store(store)
                cursor = page.next_cursor
                if cursor is None:
                    break
        if not world.stores:
            raise RuntimeError("no operational dark store: seed the city first (qc seed)")
        self._shelve_leftover_bags()
        manager = self._login(MANAGER, Role.MANAGER, ManagerClient)
        try:
            await manager.fresh(self.clock)
            for store_id in world.stores:
                staff = sorted(
                    (u for u in await manager.client.store_staff(store_id) if u.role == "picker"),
                    key=lambda u: u.login,
                )
                skip = 1 if config.leave_for_humans and len(staff) > 1 else 0
                chosen = staff[skip : skip + config.pickers_per_store]
                self.crew.pickers[store_id] = [
                    self._login(u.login, Role.PICKER, PickerClient) for u in chosen
                ]
        finally:
            await manager.client.aclose()
        # the seed hands riders to stores in turn: rider.001 -> first store, ...; the first
        # round is left to humans
        first = len(world.stores) + 1 if config.leave_for_humans else 1
        wanted = config.riders_per_store * len(world.stores)
        riders = [
            self._login(f"rider.{n:03d}", Role.RIDER, RiderClient)
            for n in range(first, first + wanted)
        ]
        customers = [
            self._login(f"customer.{n:03d}", Role.CUSTOMER, CustomerClient)
            for n in range(1, config.customers + 1)
        ]
        pickers = [p for team in self.crew.pickers.values() for p in team]
        crew: list[Login[Any]] = [*pickers, *riders, *customers]
        everyone = await asyncio.gather(*(self._try(x) for x in crew))
        ok = {id(x) for x in everyone if x is not None}
        self.crew.pickers = {
            s: [p for p in team if id(p) in ok] for s, team in self.crew.pickers.items()
        }
        self.crew.riders = [r for r in riders if id(r) in ok]
        self.crew.customers = [c for c in customers if id(c) in ok]
        if not self.crew.customers:
            raise RuntimeError("no customer could log in (customer.001 / customer-demo)")

    def _shelve_leftover_bags(self) -> None:
        """Bags packed in an earlier run are still on the shelf: their printed labels
        (from PostgreSQL) go back on the world's shelves."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT t.store_id, t.order_id::text, t.bag_label FROM pick_tasks t "
                "JOIN orders o ON o.store_id = t.store_id AND o.order_id = t.order_id "
                "WHERE o.status = 'PACKED' AND t.bag_label IS NOT NULL"
            ).fetchall()
        for store_id, order_id, label in rows:
            if store_id in self.world.shelves:
                self.world.shelves[store_id].put_nowait(order_id, label)

    # --- running ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop the run (thread-safe): the actors stop and the report is computed."""
        self._stop_requested = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(
        self, duration_s: float | None = None, *, since: datetime | None = None
    ) -> Report:
        """Run for ``duration_s`` wall-clock seconds (``duration_s`` x speed simulated), or
        until ``request_stop``; returns the report, which covers the run from ``since``
        (the day's start the demo announced, so banner and report name one time; default
        now)."""
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:
            self._stop.set()
        if not self.world.stores:
            await self.setup()
        start = since or self.clock.now()
        snapshot = await asyncio.to_thread(take_snapshot, self.database_url, start)
        customers = Customers(self.world, self.crew.customers)
        riders = [Rider(self.world, r) for r in self.crew.riders]
        actors = [
            asyncio.create_task(customers.run(), name="customers"),
            asyncio.create_task(customers.resume(), name="customers-resume"),
            *(
                asyncio.create_task(Picker(self.world, p, store).run(), name=p.login)
                for store, team in self.crew.pickers.items()
                for p in team
            ),
            *(asyncio.create_task(r.run(), name=r.login.login) for r in riders),
        ]
        try:
            await wait_event(self._stop, duration_s)
            for task in actors:
                failure = task.exception() if task.done() and not task.cancelled() else None
                if failure is not None:
                    self.world.error(task.get_name(), failure)
        finally:
            end = self.clock.now()
            self._report_stuck(await cancel_and_wait(actors))
            self._report_stuck(await customers.stop())
            await self.world.settle()  # what the cancelled actors had sent lands first
            await asyncio.gather(*(r.go_off_duty() for r in riders), return_exceptions=True)
            await self.aclose()
        wall = (end - start).total_seconds() / self.clock.speed  # on the one clock
        self.report = await asyncio.to_thread(
            build_report,
            self.database_url,
            snapshot,
            end=end,
            wall_s=wall,
            speed=self.clock.speed,
            timezone=self.config.timezone,
            simulation=self.world.stats,
            errors=self.world.errors,
            lag_s=self.world.lag,
        )
        return self.report

    def _report_stuck(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Actors that would not stop are left behind (the report matters more); where
        each was stuck goes to the log and the report's errors."""
        for task in tasks:
            where = io.StringIO()
            task.print_stack(file=where)
            log.error("actor %s did not stop:\n%s", task.get_name(), where.getvalue())
            self.world.error(task.get_name(), RuntimeError("did not stop when cancelled"))

    async def aclose(self) -> None:
        logins: list[Login[Any]] = [
            *self.crew.customers,
            *self.crew.riders,
            *(p for team in self.crew.pickers.values() for p in team),
        ]
        await asyncio.gather(*(x.client.aclose() for x in logins), return_exceptions=True)


async def run_simulation(
    base_url: str,
    *,
    clock: Clock,
    database_url: str,
    config: SimConfig | None = None,
    duration_s: float | None = None,
) -> Report:
    """Set up the crew and run the city for ``duration_s`` wall seconds; the report."""
    simulation = Simulation(base_url, clock=clock, database_url=database_url, config=config)
    await simulation.setup()
    return await simulation.run(duration_s)
