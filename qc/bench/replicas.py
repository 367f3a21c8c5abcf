"""``qc bench replicas``: the regular checkout and a flash sale through HAProxy, on 1 and
on 3 API replicas (``qc.balance``), side by side (issue 20 point 2).

Same bench city, same balancer, same client for both runs; only the number of
single-process replicas behind HAProxy changes, so the ratio is what the extra replicas
buy on this machine. For each count: complete regular orders (cart, two lines, checkout,
payment) for ``seconds`` at ``concurrency`` flows, then a flash sale of ``units`` units
to ``users`` customers (join, wait by polling, check out) while the regular orders keep
running. The load generator's own CPU is printed against the wall time (it is not the
limit while it stays well under one core).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from qc.balance import balanced
from qc.bench.flash import SECRET, create_sale, mint_tokens
from qc.bench.flash_crowd import Crowd, customer
from qc.bench.harness import conditions
from qc.bench.shopper import pct, regular_orders, session
from qc.bench.stack import bench_stack, one_row
from server.identity.models import User
from server.identity.service import issue_token
from server.kit.config import Settings
from shared.enums import Role

STORE = "BLR-KOR"


def _env(stack: Any) -> dict[str, str]:
    return {
        "QC_DATABASE_URL": stack.database_url,
        "QC_REDIS_URL": stack.redis_url,
        "QC_SECRET_KEY": SECRET,
        "QC_LOG_LEVEL": "ERROR",
        "QC_PAYMENT_LATENCY_S": "0.01",
        "QC_CART_CHECKOUT_LIMIT_PER_ADDRESS": "100000/minute",
        "QC_CART_CHECKOUT_LIMIT_PER_CUSTOMER": "100000/minute",
        "QC_CHECKOUT_RATE_LIMIT_PER_IP": "100000/minute",
        "QC_FLASH_TICK_INTERVAL_S": "0.25",
    }


async def _one(
    url: str,
    *,
    regular_tokens: list[str],
    crowd_tokens: list[str],
    boss_token: str,
    flash_sku: str,
    skus: list[str],
    concurrency: int,
    seconds: float,
    units: int,
) -> dict[str, Any]:
    async with (
        session(url, connections=64) as client,
        httpx.AsyncClient(base_url=url, timeout=120) as admin,
    ):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        regular = await regular_orders(
            client,
            regular_tokens,
            skus,
            store=STORE,
            concurrency=concurrency,
            until=asyncio.Event(),
            seconds=seconds,
        )
        client_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        sale_id = await create_sale(
            admin, boss_token, sku_id=flash_sku, store_id=STORE, units=units
        )
        crowd = Crowd()
        lanes = {k: (client, asyncio.Semaphore(16)) for k in ("join", "poll", "checkout")}
        done = asyncio.Event()
        during = asyncio.create_task(
            regular_orders(
                client, regular_tokens, skus, store=STORE, concurrency=concurrency, until=done
            )
        )
        start = time.time()
        rng = random.Random(3)
        await asyncio.gather(
            *(
                customer(
                    i,
                    token=token,
                    lanes=lanes,
                    base_ws=url.replace("http", "ws"),
                    sale_id=sale_id,
                    store=STORE,
                    start=start,
                    arrive_at=rng.uniform(0, 2.0),
                    with_socket=False,
                    abandon=False,
                    crowd=crowd,
                    poll_cap_s=0.5,
                )
                for i, token in enumerate(crowd_tokens)
            )
        )
        flash_s = time.time() - start
        done.set()
        during_regular = await during
    return {
        "checkout_orders_per_s": regular["orders_per_s"],
        "checkout_p50_ms": regular["checkout_p50_ms"],
        "checkout_p99_ms": regular["checkout_p99_ms"],
        "checkout_errors": regular["errors"],
        "flash_sold": crowd.outcomes["bought"],
        "flash_seconds": round(flash_s, 2),
        "flash_sold_per_s": round(crowd.outcomes["bought"] / flash_s, 1) if flash_s else 0.0,
        "flash_join_p99_ms": pct(crowd.join_ms, 0.99),
        "flash_checkout_p99_ms": pct(crowd.checkout_ms, 0.99),
        "checkout_during_flash_p99_ms": during_regular["checkout_p99_ms"],
        "client_cpu_of_one_core": round(client_cpu, 2),
    }


async def run(
    settings: Settings,
    *,
    counts: tuple[int, ...] = (1, 3),
    concurrency: int = 16,
    seconds: float = 15.0,
    users: int = 300,
    units: int = 100,
) -> dict[str, Any]:
    console = Console()
    results: dict[str, Any] = {"conditions": conditions(), "runs": {}}
    async with bench_stack(settings, stores=1, skus=300, pool=4, customers=users + 40) as stack:
        minted = [t for _, t in mint_tokens(stack.database_url, users + 40)]
        with psycopg.connect(stack.database_url) as conn:
            skus = [r[0] for r in conn.execute("SELECT sku_id FROM products ORDER BY sku_id")]
            manager = one_row(conn, "SELECT id FROM users WHERE login = 'manager.blr'")[0]
        boss = User(id=manager, login="manager.blr", name="m", role=Role.MANAGER, secret_hash="")
        boss_token = issue_token(boss, key=SECRET, now=datetime.now(UTC), ttl_s=6 * 3600)[0]
        env = _env(stack)
        for n, count in enumerate(counts):
            console.print(f"[bold]{count} replica(s)[/] behind HAProxy ...")
            # each run its own customers and flash SKU: the per-customer limit stays fresh
            share = users // len(counts)
            crowd = minted[n * share : (n + 1) * share]
            with balanced(env, replicas=count, startup_s=300) as lb:
                results["runs"][str(count)] = await _one(
                    lb.url,
                    regular_tokens=minted[users:],
                    crowd_tokens=crowd,
                    boss_token=boss_token,
                    flash_sku=skus[n],
                    skus=skus[len(counts) :],
                    concurrency=concurrency,
                    seconds=seconds,
                    units=units,
                )
    _print(console, results, counts)
    return results


def _print(console: Console, results: dict[str, Any], counts: tuple[int, ...]) -> None:
    runs = results["runs"]
    table = Table(title=f"qc bench replicas (cpus: {os.cpu_count()})")
    table.add_column("figure")
    for count in counts:
        table.add_column(f"{count} replica(s)", justify="right")
    if len(counts) > 1:
        table.add_column(f"ratio {counts[-1]}/{counts[0]}", justify="right")
    for key in runs[str(counts[0])]:
        values = [runs[str(c)][key] for c in counts]
        row = [key, *(str(v) for v in values)]
        if len(counts) > 1:
            a, b = values[0], values[-1]
            numeric = isinstance(a, int | float) and isinstance(b, int | float) and a
            row.append(f"{b / a:.2f}" if numeric else "")
        table.add_row(*row)
    console.print(table)
