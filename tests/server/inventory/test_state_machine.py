"""Random interleavings of every inventory operation, checked against a model.

After every step: the model, PostgreSQL and Redis agree; no bucket is negative; the
ledger's deltas add up to the stock rows' change; nothing is oversold.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from server.inventory import books, engine, journal, service
from server.inventory.errors import HoldNotActive, InsufficientStock, StockBucketShort
from server.inventory.reconcile import find_drift, load_store
from server.inventory.sweeper import sweep_store
from server.kit import db, keys
from server.kit import redis as qredis
from server.kit.clock import Clock
from server.kit.config import Settings
from shared.enums import Movement
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock

STORE = "BLR-KOR"
HOLD_S = 600
START = {"available": 6, "in_transit": 3}


@dataclass
class Hold:
    lines: dict[str, int] = field(default_factory=dict)
    state: str = "SOFT"  # SOFT, HARD, or ended
    expires: float = 0.0


class InventoryMachine(RuleBasedStateMachine):
    database_url: str = ""
    redis_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        cfg = Settings(
            database_url=self.database_url,
            redis_url=self.redis_url,
            db_pool_size=2,
            db_max_overflow=2,
        )
        self.engine = db.create_engine(self.database_url, cfg)
        self.sessions = db.session_maker(self.engine)
        self.redis = self.run(self._client())
        self.clock = Clock()
        self.pg = psycopg.connect(self.database_url, autocommit=True)
        self.tag = uuid.uuid4().hex[:8]
        self.holds: dict[str, Hold] = {}
        self.generation = [0, 0, 0]
        self.stock: dict[str, dict[str, int]] = {}
        self.ledger_base: dict[str, tuple[int, ...]] = {}
        self.stock_base: dict[str, tuple[int, ...]] = {}

    async def _client(self):
        return qredis.create_redis(self.redis_url)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.redis.aclose())
        self.run(self.engine.dispose())
        self.loop.close()
        self.pg.close()

    @initialize()
    def start_from_known_stock(self) -> None:
        with psycopg.connect(self.database_url) as conn:
            self.skus = [
                r[0]
                for r in conn.execute(
                    "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id LIMIT 2",
                    (STORE,),
                )
            ]
            conn.execute(
                "UPDATE inventory_reservations SET status = 'RELEASED' "
                "WHERE store_id = %s AND status IN ('SOFT', 'HARD')",
                (STORE,),
            )
            conn.execute(
                "UPDATE store_inventory SET available_qty = %s, reserved_qty = 0, "
                "damaged_qty = 0, in_transit_qty = %s WHERE store_id = %s "
                "AND sku_id = ANY(%s)",
                (START["available"], START["in_transit"], STORE, self.skus),
            )
        self.run(self.redis.flushdb())
        self.run(load_store(self.engine, self.redis, STORE))
        for sku in self.skus:
            self.stock[sku] = {
                "available": START["available"],
                "reserved": 0,
                "damaged": 0,
                "in_transit": START["in_transit"],
            }
            self.ledger_base[sku] = ledger_sum(self.pg, STORE, sku)
            self.stock_base[sku] = pg_stock(self.pg, STORE, sku)

    # --- helpers -------------------------------------------------------------------
    async def _in_tx(self, fn):
        async with db.transaction(self.sessions) as s:
            return await fn(s)

    def _end(self, name: str, outcome: str) -> None:
        hold = self.holds[name]
        for sku, q in hold.lines.items():
            self.stock[sku]["reserved"] -= q
            if outcome != "COMMITTED":
                self.stock[sku]["available"] += q
        hold.state, hold.lines = "ended", {}

    # --- rules ---------------------------------------------------------------------
    @rule(cart=st.integers(0, 2), sku=st.integers(0, 1), qty=st.integers(0, 5))
    def reserve(self, cart: int, sku: int, qty: int) -> None:
        # a checked-out cart is never reused: the customer's next basket is a new cart
        name, sku_id = f"cart-{self.tag}-{cart}-{self.generation[cart]}", self.skus[sku]
        hold = self.holds.get(name)
        now = self.clock.now()
        call = self._in_tx(
            lambda s: service.reserve_lines(
                s,
                self.redis,
                store_id=STORE,
                holder=name,
                lines={sku_id: qty},
                now=now,
                hold_s=HOLD_S,
            )
        )
        if hold is not None and hold.state != "SOFT":
            with pytest.raises(HoldNotActive):
                self.run(call)
            return
        delta = qty - (hold.lines.get(sku_id, 0) if hold else 0)
        if delta > self.stock[sku_id]["available"]:
            with pytest.raises(InsufficientStock):
                self.run(call)
            return
        self.run(call)
        hold = self.holds.setdefault(name, Hold())
        self.stock[sku_id]["available"] -= delta
        self.stock[sku_id]["reserved"] += delta
        if qty:
            hold.lines[sku_id] = qty
        else:
            hold.lines.pop(sku_id, None)
        hold.expires = now.timestamp() + HOLD_S
        if not hold.lines:
            del self.holds[name]  # an emptied cart leaves no hold behind

    @precondition(lambda self: any(h.state == "SOFT" for h in self.holds.values()))
    @rule(data=st.data())
    def checkout(self, data: st.DataObject) -> None:
        name = data.draw(
            st.sampled_from(sorted(n for n, h in self.holds.items() if h.state == "SOFT"))
        )
        order = name.replace("cart", "order")
        hold = self.holds.pop(name)
        now = self.clock.now()
        self.run(
            self._in_tx(
                lambda s: service.reserve_lines(
                    s,
                    self.redis,
                    store_id=STORE,
                    holder=name,
                    lines=dict(hold.lines),
                    now=now,
                    hold_s=HOLD_S,
                    mode="HARD",
                    new_holder=order,
                )
            )
        )
        hold.state, hold.expires = "HARD", now.timestamp() + HOLD_S
        self.holds[order] = hold
        self.generation[int(name.split("-")[2])] += 1

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), outcome=st.sampled_from(["COMMITTED", "RELEASED"]))
    def settle(self, data: st.DataObject, outcome: engine.Outcome) -> None:
        name = data.draw(st.sampled_from(sorted(self.holds)))
        result = self.run(
            self._in_tx(
                lambda s: service.settle_hold(
                    s,
                    self.redis,
                    store_id=STORE,
                    holder=name,
                    outcome=outcome,
                    now=self.clock.now(),
                )
            )
        )
        if self.holds[name].state == "ended":
            assert result.status == "NOOP"
        else:
            assert result.status == "OK"
            self._end(name, outcome)

    @rule(seconds=st.integers(0, 700))
    def time_passes_and_the_sweeper_runs(self, seconds: int) -> None:
        self.clock.advance(seconds)
        now = self.clock.now().timestamp()
        due = [n for n, h in self.holds.items() if h.state != "ended" and h.expires <= now]
        released = self.run(sweep_store(self.sessions, self.redis, self.clock, STORE))
        assert released == len(due)
        for name in due:
            self._end(name, "EXPIRED")

    @rule(sku=st.integers(0, 1), qty=st.integers(1, 4), from_transit=st.booleans())
    def receive(self, sku: int, qty: int, from_transit: bool) -> None:
        sku_id = self.skus[sku]
        call = self._in_tx(
            lambda s: service.move_stock(
                s,
                self.redis,
                store_id=STORE,
                sku_id=sku_id,
                movement=Movement.RECEIPT,
                now=self.clock.now(),
                d_available=qty,
                d_in_transit=-qty if from_transit else 0,
            )
        )
        if from_transit and self.stock[sku_id]["in_transit"] < qty:
            with pytest.raises(StockBucketShort):
                self.run(call)
            return
        self.run(call)
        self.stock[sku_id]["available"] += qty
        if from_transit:
            self.stock[sku_id]["in_transit"] -= qty

    @rule(sku=st.integers(0, 1), qty=st.integers(1, 3))
    def damage(self, sku: int, qty: int) -> None:
        sku_id = self.skus[sku]
        call = self._in_tx(
            lambda s: service.move_stock(
                s,
                self.redis,
                store_id=STORE,
                sku_id=sku_id,
                movement=Movement.DAMAGE,
                now=self.clock.now(),
                d_available=-qty,
                d_damaged=qty,
                reason="dropped",
            )
        )
        if self.stock[sku_id]["available"] < qty:
            with pytest.raises(StockBucketShort):
                self.run(call)
            return
        self.run(call)
        self.stock[sku_id]["available"] -= qty
        self.stock[sku_id]["damaged"] += qty

    @rule()
    def redis_loses_everything(self) -> None:
        self.run(self.redis.flushdb())
        # no reconcile call: the next operation must find the store unloaded and load it

    # --- invariants ----------------------------------------------------------------
    @invariant()
    def books_agree_everywhere(self) -> None:
        if not hasattr(self, "skus"):
            return  # before the initialize step
        if not self.run(self.redis.exists(keys.store_ready(STORE))):
            self.run(load_store(self.engine, self.redis, STORE))
        self.run(journal.drain(self.engine, self.redis, STORE))  # the writer's next run
        for sku in self.skus:
            want = tuple(
                self.stock[sku][b] for b in ("available", "reserved", "damaged", "in_transit")
            )
            assert min(want) >= 0
            assert pg_stock(self.pg, STORE, sku) == want
            assert self.run(redis_stock(self.redis, STORE, sku)) == want
            moved = tuple(
                a - b
                for a, b in zip(ledger_sum(self.pg, STORE, sku), self.ledger_base[sku], strict=True)
            )
            changed = tuple(a - b for a, b in zip(want, self.stock_base[sku], strict=True))
            assert moved == changed
        assert self.run(find_drift(self.engine, self.redis, STORE)) == []
        # the books' own balance: reserved units are what the open holds hold
        assert self.run(self._in_tx(lambda s: books.unbalanced(s, store_id=STORE))) == []


@pytest.mark.slow
def test_inventory_state_machine(stack) -> None:
    InventoryMachine.database_url = stack.database_url
    InventoryMachine.redis_url = stack.redis_url
    run_state_machine_as_test(
        InventoryMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
