"""Faults: a crash between the Redis and PostgreSQL writes, a Redis that lost its data,
and holds that come due while the server process is down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Literal

import httpx
import psycopg
import pytest

from server.inventory import journal, service
from server.inventory.reconcile import (
    DRIFT_REPAIRED,
    LOOKS,
    MAX_LOCK_WAIT_S,
    STORE_LOADS,
    _consistent_look,
    find_drift,
    load_store,
    lock_wait,
    reconcile_store,
)
from server.kit import keys
from server.kit.db import transaction
from tests.helpers import one_row
from tests.server.inventory.helpers import pg_stock, redis_stock, reservation_rows

STORE = "BLR-KOR"

CRASH_BETWEEN_WRITES = textwrap.dedent("""
    import asyncio, os, sys
    from server.kit import db, redis as qredis
    from server.kit.clock import Clock
    from server.kit.config import Settings
    from server.inventory import journal, service

    async def die_before_postgres(*args, **kwargs):
        os._exit(9)  # the process dies after Redis said yes, before PostgreSQL heard of it

    service._write_hold_lines = die_before_postgres

    async def main():
        url, rurl, sku = sys.argv[1:4]
        engine = db.create_engine(url, Settings())
        sessions = db.session_maker(engine)
        redis = qredis.create_redis(rurl)
        # a checkout's hard hold: written by the request itself, with the order
        async with db.transaction(sessions) as s:
            await service.reserve_lines(s, redis, store_id="BLR-KOR", holder="order-crash",
                                        lines={sku: 2}, now=Clock().now(), hold_s=600,
                                        mode="HARD")

    asyncio.run(main())
""")


def _sku(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return one_row(
            conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND "
                "available_qty >= 5 ORDER BY sku_id LIMIT 1",
                (STORE,),
            )
        )[0]


async def test_crash_between_redis_and_postgres_is_repaired(stack) -> None:
    sku = _sku(stack.database_url)
    truth = pg_stock(stack.database_url, STORE, sku)
    out = subprocess.run(
        [sys.executable, "-c", CRASH_BETWEEN_WRITES, stack.database_url, stack.redis_url, sku],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 9, out.stderr
    # Redis took the hold, PostgreSQL never did: the books disagree
    assert (await redis_stock(stack.redis, STORE, sku))[:2] == (truth[0] - 2, truth[1] + 2)
    assert pg_stock(stack.database_url, STORE, sku) == truth
    assert reservation_rows(stack.database_url, STORE, "order-crash") == {}

    before = DRIFT_REPAIRED.labels(STORE, "stock")._value.get()
    repaired = await reconcile_store(stack.engine, stack.redis, STORE, quiesce_s=0.2)
    assert {(d.kind, d.key) for d in repaired} == {("stock", sku), ("hold", "order-crash")}
    assert DRIFT_REPAIRED.labels(STORE, "stock")._value.get() == before + 1
    assert await redis_stock(stack.redis, STORE, sku) == truth
    assert not await stack.redis.exists(keys.hold(STORE, "order-crash"))
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_change_in_flight_is_not_mistaken_for_drift(stack) -> None:
    sku = _sku(stack.database_url)
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, "order-slow", {sku: 1}, mode="HARD")
        # Redis has it, PostgreSQL's transaction is still open: one look sees a difference
        assert await find_drift(stack.engine, stack.redis, STORE) != []
    assert await reconcile_store(stack.engine, stack.redis, STORE) == []
    assert reservation_rows(stack.database_url, STORE, "order-slow") == {sku: (1, "HARD")}


async def test_a_write_holding_the_store_lock_is_neither_paused_nor_reloaded(stack) -> None:
    """The quick look catches a checkout's hard hold between its two writes (its
    transaction slower than the look, as under a city's peak): the consistent look waits
    for that transaction's lock, gives up when it is not had in time, and the store stays
    ready in its epoch: the transaction's next change is not refused, nothing reloaded."""
    sku = _sku(stack.database_url)
    epoch = await stack.redis.get(keys.store_ready(STORE))
    loads = STORE_LOADS.labels(STORE, "drift")._value.get()
    busy = LOOKS.labels(STORE, "busy")._value.get()
    waited = lock_wait(STORE, 0.1)
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, "order-slower", {sku: 1}, mode="HARD")
        assert await find_drift(stack.engine, stack.redis, STORE) != []
        assert await reconcile_store(stack.engine, stack.redis, STORE, lock_wait_s=0.1) == []
        assert await stack.redis.get(keys.store_ready(STORE)) == epoch
        await _reserve(s, stack, "order-slower", {sku: 2}, mode="HARD")
    assert LOOKS.labels(STORE, "busy")._value.get() == busy + 1
    # the next look waits twice as long, until one gets the lock
    assert lock_wait(STORE, 0.1) == min(2 * waited, MAX_LOCK_WAIT_S)
    assert await stack.redis.get(keys.store_ready(STORE)) == epoch
    assert STORE_LOADS.labels(STORE, "drift")._value.get() == loads
    assert reservation_rows(stack.database_url, STORE, "order-slower") == {sku: (2, "HARD")}
    assert (await stack.redis.hgetall(keys.hold(STORE, "order-slower")))[sku] == "2"
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    # real drift, looked at with the lock had: the wait is back to the base
    await stack.redis.hincrby(keys.inventory(STORE, sku), "available", 3)
    assert await reconcile_store(stack.engine, stack.redis, STORE, lock_wait_s=0.1) != []
    assert lock_wait(STORE, 0.1) == 0.1


async def test_what_the_quick_look_caught_in_flight_is_clean_in_the_consistent_look(
    stack,
) -> None:
    """Suspects the quick look found while a hard hold and a journaled cart line were
    between their two writes: the consistent look, once both are written, finds nothing;
    a cart line journaled meanwhile reaches the books with it."""
    sku = _sku(stack.database_url)
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, "order-look", {sku: 1}, mode="HARD")
        suspects = await find_drift(stack.engine, stack.redis, STORE)
    assert {(d.kind, d.key) for d in suspects} >= {("stock", sku), ("hold", "order-look")}
    await _soft_hold(stack, "cart-look", sku)  # journaled, not yet in the books
    assert reservation_rows(stack.database_url, STORE, "cart-look") == {}
    assert (
        await _consistent_look(
            stack.engine, stack.redis, STORE, suspects, lock_wait_s=10, quiesce_s=10
        )
        == []
    )
    assert reservation_rows(stack.database_url, STORE, "cart-look") == {sku: (1, "SOFT")}
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_lost_redis_is_rebuilt_before_the_next_reservation(stack) -> None:
    sku = _sku(stack.database_url)
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, "cart-a", {sku: 2})
    await journal.drain(stack.engine, stack.redis, STORE)  # the writer applied cart-a's hold
    async with transaction(stack.sessions) as s:  # journaled, not yet applied: the window
        await _reserve(s, stack, "cart-c", {sku: 1})
    await stack.redis.flushdb()  # e.g. a restart with no persistence
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, "cart-b", {sku: 1})
    await journal.drain(stack.engine, stack.redis, STORE)
    # the rebuild came first: cart-a's hold survived and counts against availability;
    # cart-c's was lost with Redis before the writer applied it, on both sides alike
    assert reservation_rows(stack.database_url, STORE, "cart-c") == {}
    assert not await stack.redis.exists(keys.hold(STORE, "cart-c"))
    assert await redis_stock(stack.redis, STORE, sku) == pg_stock(stack.database_url, STORE, sku)
    assert pg_stock(stack.database_url, STORE, sku)[1] == 3
    held = await stack.redis.hgetall(keys.hold(STORE, "cart-a"))
    assert held[sku] == "2"
    assert await find_drift(stack.engine, stack.redis, STORE) == []


@pytest.mark.slow
async def test_holds_expire_after_a_server_restart(stack) -> None:
    sku = _sku(stack.database_url)
    truth = pg_stock(stack.database_url, STORE, sku)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")} | {
        "QC_DATABASE_URL": stack.database_url,
        "QC_REDIS_URL": stack.redis_url,
        "QC_SECRET_KEY": "restart-test-secret-key-0123456789abcdef",
        "QC_LOG_JSON": "false",
        "QC_SWEEP_INTERVAL_S": "0.2",
    }

    def start(port: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qc.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "server exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became healthy"
            time.sleep(0.1)

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    first = start(port)
    async with transaction(stack.sessions) as s:
        await service.reserve_lines(
            s,
            stack.redis,
            store_id=STORE,
            holder="cart-restart",
            lines={sku: 2},
            now=stack.clock.now(),
            hold_s=3,
        )
    # the first server's journal writer records the hold
    deadline = time.monotonic() + 30
    while reservation_rows(stack.database_url, STORE, "cart-restart") != {sku: (2, "SOFT")}:
        assert time.monotonic() < deadline, "the journal writer never recorded the hold"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # no graceful shutdown: the hold is still due later
    first.wait(timeout=10)

    second = start(port)
    try:
        deadline = time.monotonic() + 30
        while reservation_rows(stack.database_url, STORE, "cart-restart")[sku][1] != "EXPIRED":
            assert time.monotonic() < deadline, "the hold never expired"
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(timeout=60)
        except subprocess.TimeoutExpired:  # shutdown speed is not what this test is about
            second.kill()
            second.wait(timeout=10)
    assert pg_stock(stack.database_url, STORE, sku) == truth
    assert await redis_stock(stack.redis, STORE, sku) == truth


async def test_a_rebuild_lets_the_writes_it_waits_for_finish(stack) -> None:
    """A drift rebuild waits for the store's lock while a checkout's transaction holds it
    shared: the store stays ready meanwhile, so that transaction's next change is not
    refused (the flash benchmark's paid checkout answered 503 when the marker went first),
    and a cart line journaled while the rebuild waits is applied before the books are
    read, then kept on both sides."""
    sku = _sku(stack.database_url)
    epoch = await stack.redis.get(keys.store_ready(STORE))
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, "order-held", {sku: 1}, mode="HARD")  # the lock, shared
        rebuild = asyncio.ensure_future(load_store(stack.engine, stack.redis, STORE, why="drift"))
        deadline = time.monotonic() + 30
        while not _waiting_for_advisory_lock(stack.database_url):
            assert time.monotonic() < deadline, "the rebuild never waited for the writer"
            assert not rebuild.done(), rebuild
            await asyncio.sleep(0.01)
        assert await stack.redis.get(keys.store_ready(STORE)) == epoch
        await _soft_hold(stack, "cart-late", sku)  # admitted and journaled, not refused
        await _reserve(s, stack, "order-held", {sku: 2}, mode="HARD")  # not refused either
        assert not rebuild.done()
    await rebuild
    assert await stack.redis.get(keys.store_ready(STORE)) not in (None, epoch)  # reloaded
    assert reservation_rows(stack.database_url, STORE, "order-held") == {sku: (2, "HARD")}
    assert (await stack.redis.hgetall(keys.hold(STORE, "order-held")))[sku] == "2"
    assert (await stack.redis.hgetall(keys.hold(STORE, "cart-late")))[sku] == "1"
    assert reservation_rows(stack.database_url, STORE, "cart-late") == {sku: (1, "SOFT")}
    assert await redis_stock(stack.redis, STORE, sku) == pg_stock(stack.database_url, STORE, sku)
    assert await find_drift(stack.engine, stack.redis, STORE) == []


def _waiting_for_advisory_lock(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return row is not None and row[0] > 0


async def _soft_hold(stack, holder: str, sku: str) -> None:
    async with transaction(stack.sessions) as s:
        await _reserve(s, stack, holder, {sku: 1})


async def _reserve(
    s, stack, holder: str, lines: dict[str, int], *, mode: Literal["SOFT", "HARD"] = "SOFT"
) -> None:
    await service.reserve_lines(
        s,
        stack.redis,
        store_id=STORE,
        holder=holder,
        lines=lines,
        now=stack.clock.now(),
        hold_s=600,
        mode=mode,
    )
