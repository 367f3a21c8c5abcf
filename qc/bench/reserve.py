"""``qc bench reserve``: the reservation engine against its limit and a row-lock baseline.

Side by side in one run, on one hot SKU and on 5,000 SKUs:
- engine end to end: ``reserve_lines`` (SOFT: the Lua gate journals the movement) with the
  journal writer applying batches to the PostgreSQL books meanwhile (a task like the leased
  loop, every 50 ms); the clock stops only when the books hold every reservation (the
  final drain is inside the measured time), and the books are checked against Redis;
- the same with the writer's loop in a spawned process of its own (its event loop not
  shared with the requests, as a dedicated writer process would run);
- engine (Redis only): the reserve script alone;
- trivial Lua: a script that reads one hash field on the same Redis (the limit);
- PostgreSQL row lock: ``UPDATE ... SET available = available - n WHERE available >= n``
  in its own transaction, the classic hot-row approach.

Every run, of every scenario, starts from the seeded books (``_fresh``): a run's holds are
never ended (a reservation bench holds), so without it each run would find the rows and
holds of all the runs before it, and the last scenarios (the 5,000 SKUs) the most.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from multiprocessing.synchronize import Barrier
from multiprocessing.synchronize import Event as EventType

import psycopg
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from qc.bench.harness import Result, Spawned, conditions, measure, median_of, print_table
from qc.bench.stack import BenchStack, bench_stack
from qc.bench.wrk import cpu_meter, service_pids
from server.inventory import engine as redis_engine
from server.inventory import journal, service
from server.inventory.reconcile import find_drift, load_store
from server.kit import db, keys
from server.kit import redis as qredis
from server.kit.clock import Clock
from server.kit.config import Settings, get_settings
from server.kit.db import transaction

STORE = "BLR-KOR"
TRIVIAL = "return redis.call('HGET', KEYS[1], 'available')"
APART = "engine end to end, the writer in a process of its own"


async def run(settings: Settings, *, ops: int, concurrency: int, repeats: int) -> dict:
    async with bench_stack(settings, pool=concurrency) as stack:
        with psycopg.connect(stack.database_url) as conn:
            seeded = conn.execute(
                "SELECT array_agg(sku_id ORDER BY sku_id), array_agg(available_qty ORDER BY "
                "sku_id), array_agg(reserved_qty ORDER BY sku_id) FROM store_inventory "
                "WHERE store_id = %s",
                (STORE,),
            ).fetchone()
        assert seeded is not None and seeded[0], "the bench city has no stock"
        skus: list[str] = seeded[0]
        hot = skus[0]
        clock = Clock()
        rng = random.Random(7)
        trivial = stack.redis.register_script(TRIVIAL)

        def pick(spread: str) -> str:
            return hot if spread == "1 SKU" else rng.choice(skus)

        def scenarios(spread: str):
            async def engine_full(i: int) -> None:
                async with transaction(stack.sessions) as s:  # as a request calls it
                    await service.reserve_lines(
                        s,
                        stack.redis,
                        store_id=STORE,
                        holder=uuid.uuid4().hex,
                        lines={pick(spread): 1},
                        now=clock.now(),
                        hold_s=600,
                    )

            async def engine_redis(i: int) -> None:
                await redis_engine.reserve(
                    stack.redis,
                    store_id=STORE,
                    holder=uuid.uuid4().hex,
                    lines={pick(spread): 1},
                    mode="SOFT",
                    expires_at=clock.now().timestamp() + 600,
                    now=clock.now().timestamp(),
                )

            async def trivial_lua(i: int) -> None:
                await trivial(keys=[keys.inventory(STORE, pick(spread))])

            async def pg_row_lock(i: int) -> None:
                async with stack.engine.begin() as conn:
                    await conn.execute(
                        text(
                            "UPDATE store_inventory SET available_qty = available_qty - 1, "
                            "reserved_qty = reserved_qty + 1 WHERE store_id = :s AND sku_id = :k "
                            "AND available_qty >= 1"
                        ),
                        {"s": STORE, "k": pick(spread)},
                    )

            return [
                ("engine end to end (Redis + journal -> PostgreSQL)", engine_full),
                (APART, engine_full),
                ("engine, Redis side only", engine_redis),
                ("trivial Lua (limit)", trivial_lua),
                ("PostgreSQL row lock", pg_row_lock),
            ]

        writing: dict[str, list[_Writing]] = {}
        # CPU per operation of each party (this process and its children: Python), the
        # machine being shared: what an operation costs, however busy the machine is
        parties = {"Python": [os.getpid()], **service_pids(stack.database_url, stack.redis_url)}
        cpu: dict[str, list[dict[str, float]]] = {}

        async def measured(spread: str, name: str, op: Callable[[int], Awaitable[None]]) -> Result:
            await _fresh(stack, seeded)
            if not name.startswith("engine end to end"):
                with cpu_meter(parties) as used:
                    result = await measure(name, op, total=ops, concurrency=concurrency)
            else:
                result, wrote, used = await _end_to_end(
                    stack,
                    name,
                    op,
                    total=ops,
                    concurrency=concurrency,
                    apart=name == APART,
                    parties=parties,
                )
                writing.setdefault(f"{spread}, {name}", []).append(wrote)
            cpu.setdefault(f"{spread}, {name}", []).append(
                {k: v / ops * 1e6 for k, v in used.items()}
            )
            return result

        tables: dict[str, list[Result]] = {}
        for spread in ("1 SKU", "5,000 SKUs"):
            results = []
            for name, op in scenarios(spread):
                runs = [await measured(spread, name, op) for _ in range(repeats)]
                results.append(median_of(runs))
            tables[spread] = results
        cond = conditions(
            concurrency=concurrency,
            ops_per_scenario=ops,
            repeats=repeats,
            services="embedded" if stack.embedded else "external",
            journal_interval_s=settings.journal_interval_s,  # QC_JOURNAL_INTERVAL_S
        )
        cpu_us = {
            k: {p: round(statistics.median(r[p] for r in runs), 1) for p in runs[0]}
            for k, runs in cpu.items()
        }
        for spread, results in tables.items():
            print_table(f"qc bench reserve: {spread}", results, "trivial Lua (limit)", cond)
            print("  CPU µs per operation (medians): " + " / ".join(parties) + " = total")
            for r in results:
                us = cpu_us[f"{spread}, {r.name}"]
                print(
                    f"    {r.name}: "
                    + " / ".join(f"{us.get(p, 0):.0f}" for p in parties)
                    + f" = {sum(us.values()):.0f}"
                )
            lock = results[-1]
            for full in results[:2]:
                print(
                    f"  {full.name} / PostgreSQL row lock: {full.per_second / lock.per_second:.1f}x"
                    if lock.per_second
                    else ""
                )
                writes = writing[f"{spread}, {full.name}"]
                wrote = sorted(writes, key=lambda w: w.per_second)[len(writes) // 2]
                print(
                    f"    its journal writer: {wrote.per_second:,.0f} movements/s while writing "
                    f"({wrote.movements:,} in {wrote.seconds:.2f} s, {wrote.share:.0%} of the run)"
                )
        return {
            "conditions": cond,
            "results": {k: [r.as_dict() for r in v] for k, v in tables.items()},
            "cpu_us_per_op": cpu_us,
            "journal_writer": {
                k: [
                    {
                        "movements": w.movements,
                        "seconds": round(w.seconds, 3),
                        "per_second": round(w.per_second, 1),
                    }
                    for w in v
                ]
                for k, v in writing.items()
            },
        }


@dataclass
class _Writing:
    """What the journal writer did in one end-to-end run."""

    movements: int
    seconds: float  # inside the writer's runs (its rate's denominator)
    share: float  # of the run's wall time

    @property
    def per_second(self) -> float:
        return self.movements / self.seconds if self.seconds else 0.0


async def _write_until(
    engine: AsyncEngine,
    redis: aioredis.Redis,
    stopped: Callable[[], bool],
    pause: Callable[[float], Awaitable[object]],
) -> _Writing:
    """The journal writer's loop (as the leased loop runs it) until ``stopped()``; its last
    run starts after that, so it applies every reservation made before."""
    interval = get_settings().journal_interval_s
    wrote = _Writing(0, 0.0, 0.0)
    while True:
        stopping = stopped()  # read first: a last run after it drains the rest
        began = time.perf_counter()
        wrote.movements += await journal.write_stores(engine, redis, [STORE])
        wrote.seconds += time.perf_counter() - began
        if stopping:
            return wrote
        await pause(interval)


@dataclass(frozen=True)
class _Apart:
    database_url: str
    redis_url: str
    stop: EventType  # set by the bench once every reservation is in Redis
    written: EventType  # set by the writer after its last run (or its failure)
    measured: EventType  # set by the bench once it read the CPU meter: the writer may end


async def _write_apart(share: _Apart, barrier: Barrier) -> _Writing:
    """The writer's loop in a spawned process (``harness.Spawned``): what a writer process
    of its own would apply, its event loop not shared with the requests."""
    settings = get_settings().model_copy(update={"db_pool_size": 2, "db_max_overflow": 0})
    engine = db.create_engine(share.database_url, settings)
    redis = qredis.create_redis(share.redis_url, max_connections=4)
    await asyncio.to_thread(barrier.wait, 300)
    try:
        return await _write_until(
            engine, redis, share.stop.is_set, lambda s: asyncio.to_thread(share.stop.wait, s)
        )
    finally:
        # alive (and its PostgreSQL backends too) until the meter has read its CPU: a
        # process that ended before it counted nothing
        share.written.set()
        await asyncio.to_thread(share.measured.wait, 300)
        await redis.aclose()
        await engine.dispose()


async def _end_to_end(
    stack: BenchStack,
    name: str,
    op: Callable[[int], Awaitable[None]],
    *,
    total: int,
    concurrency: int,
    apart: bool,
    parties: dict[str, list[int]],
) -> tuple[Result, _Writing, dict[str, float]]:
    """``op`` under load with the journal writer running, as a task of this process (like
    the leased loop) or ``apart`` in a spawned one; the time includes the writer's last
    run, so the figure is reservations per second that reached the books. Also answers
    the CPU seconds of each of ``parties`` in that time (the checks after it left out)."""
    context = multiprocessing.get_context("spawn")
    stop, written, measured = context.Event(), context.Event(), context.Event()
    if apart:
        share = _Apart(stack.database_url, stack.redis_url, stop, written, measured)
        spawned = Spawned(_write_apart, [share])
        await spawned.start()
    with cpu_meter(parties) as used:
        if not apart:
            done = asyncio.Event()

            async def pause(seconds: float) -> None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        await done.wait()

            task = asyncio.create_task(_write_until(stack.engine, stack.redis, done.is_set, pause))
        started = time.perf_counter()
        result = await measure(name, op, total=total, concurrency=concurrency)
        if apart:
            stop.set()
            await asyncio.to_thread(written.wait, 3600)
        else:
            done.set()
            wrote = await task
        elapsed = time.perf_counter() - started
    if apart:
        measured.set()
        (wrote,) = await spawned.results()
    wrote.share = wrote.seconds / elapsed
    if await journal.drain(stack.engine, stack.redis, STORE):
        raise RuntimeError("the writer left entries unapplied")
    drift = await find_drift(stack.engine, stack.redis, STORE)
    if drift:
        raise RuntimeError(f"the books disagree with Redis after the run: {drift[:3]}")
    return replace(result, seconds=elapsed), wrote, used


async def _fresh(stack: BenchStack, seeded: tuple[list[str], list[int], list[int]]) -> None:
    """The seeded books again, before every run of every scenario (the engine's and the
    row lock's alike): the reservations, ledger rows and journal offset of the runs before
    gone, the stock back to its seeded quantities, the tables vacuumed (their dead rows
    would be autovacuum's, not a reservation's, cost), and Redis loaded from these books
    (the bench's own database and Redis DB)."""
    await stack.redis.flushdb()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE inventory_reservations, stock_ledger, inventory_journal_offsets")
        conn.execute(
            "UPDATE store_inventory i SET available_qty = s.a, reserved_qty = s.r "
            "FROM unnest(%s::text[], %s::int[], %s::int[]) AS s(k, a, r) "
            "WHERE i.store_id = %s AND i.sku_id = s.k",
            (*seeded, STORE),
        )
        conn.execute("VACUUM (ANALYZE) store_inventory, inventory_reservations, stock_ledger")
    await load_store(stack.engine, stack.redis, STORE)


__all__ = ["BenchStack", "run"]
