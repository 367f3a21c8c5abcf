"""``qc bench reserve``: the reservation engine against its limit and a row-lock baseline.

Side by side in one run, on one hot SKU and on 5,000 SKUs:
- engine: ``reserve_lines`` end to end (Lua gate in Redis + the PostgreSQL books);
- engine (Redis only): the same Lua script without the PostgreSQL write;
- trivial Lua: a script that reads one hash field on the same Redis (the limit);
- PostgreSQL row lock: ``UPDATE ... SET available = available - n WHERE available >= n``
  in its own transaction, the classic hot-row approach.
"""

from __future__ import annotations

import random
import uuid

import psycopg
from sqlalchemy import text

from qc.bench.harness import Result, conditions, measure, median_of, print_table
from qc.bench.stack import BenchStack, bench_stack
from server.inventory import engine as redis_engine
from server.inventory import service
from server.inventory.reconcile import load_store
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction

STORE = "BLR-KOR"
TRIVIAL = "return redis.call('HGET', KEYS[1], 'available')"


async def run(settings: Settings, *, ops: int, concurrency: int, repeats: int) -> dict:
    async with bench_stack(settings, pool=concurrency) as stack:
        await load_store(stack.engine, stack.redis, STORE)
        with psycopg.connect(stack.database_url) as conn:
            skus = [
                r[0]
                for r in conn.execute(
                    "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id",
                    (STORE,),
                )
            ]
        hot = skus[0]
        clock = Clock()
        rng = random.Random(7)
        trivial = stack.redis.register_script(TRIVIAL)

        def pick(spread: str) -> str:
            return hot if spread == "1 SKU" else rng.choice(skus)

        def scenarios(spread: str):
            async def engine_full(i: int) -> None:
                async with transaction(stack.sessions) as s:
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
                )

            async def trivial_lua(i: int) -> None:
                from server.kit import keys

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
                ("engine (Redis + PostgreSQL)", engine_full),
                ("engine, Redis side only", engine_redis),
                ("trivial Lua (limit)", trivial_lua),
                ("PostgreSQL row lock", pg_row_lock),
            ]

        tables: dict[str, list[Result]] = {}
        for spread in ("1 SKU", "5,000 SKUs"):
            results = []
            for name, op in scenarios(spread):
                runs = [
                    await measure(f"{name}", op, total=ops, concurrency=concurrency)
                    for _ in range(repeats)
                ]
                results.append(median_of(runs))
            tables[spread] = results
        cond = conditions(
            concurrency=concurrency,
            ops_per_scenario=ops,
            repeats=repeats,
            services="embedded" if stack.embedded else "external",
        )
        for spread, results in tables.items():
            print_table(f"qc bench reserve: {spread}", results, "trivial Lua (limit)", cond)
        return {
            "conditions": cond,
            "results": {k: [r.as_dict() for r in v] for k, v in tables.items()},
        }


__all__ = ["BenchStack", "run"]
