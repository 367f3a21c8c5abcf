"""``qc bench checkout``: complete orders per second over real HTTP, driven by wrk.

One flow = start a cart, hold 3 SKUs (one PUT each), check out with an Idempotency-Key;
the simulated provider pays, so a flow counts only when the answer is 201 CONFIRMED.
wrk runs ``wrk/checkout.lua`` with one connection per thread (each thread drives its own
flow), against the API as ``qc serve`` runs it (granian by default, or uvicorn) with 1 and
2 workers; the same wrk settings against
the bare FastAPI route (same server, same workers) show what the generator and the server
can carry, so the orders' figure is not the generator's. Before the measured runs, the same
flow runs ``warmup`` seconds uncounted: a server at the peak hour has run a while (its
pools full, its statements prepared on every connection), and a fresh one's first seconds
parse and plan every statement on every new connection. The journal writer and every other
background loop run beside the workers in their own process, as ``qc serve`` runs them (its
CPU is counted in the API's); after the runs, the books are checked against Redis (no
drift) from the ledger.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from typing import Any

import psycopg
from rich.console import Console

from qc.bench import wrk
from qc.bench.harness import conditions
from qc.bench.serving import serve_process
from qc.bench.stack import bench_stack, one_row
from server.identity.models import User
from server.identity.service import issue_token
from server.inventory import journal
from server.inventory.reconcile import find_drift
from server.kit.clock import Clock
from server.kit.config import Settings

API = "qc.serving:create_served_app"  # the app as qc serve runs it
STORE = "BLR-KOR"
SECRET = "bench-secret-key-" + "x" * 40
LINES = 3


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "QC_DATABASE_URL": database_url,
        "QC_REDIS_URL": redis_url,
        "QC_SECRET_KEY": SECRET,
        "QC_LOG_JSON": "true",
        "QC_LOG_LEVEL": "WARNING",
        "QC_PAYMENT_LATENCY_S": "0.01",
        # the bench's customers all come from one address and order again and again
        "QC_CART_CHECKOUT_LIMIT_PER_ADDRESS": "10000000/minute",
        "QC_CART_CHECKOUT_LIMIT_PER_CUSTOMER": "10000000/minute",
        "QC_CART_MAX_HOLDING": "1000000",  # a few customers, many carts at once
    }


def _write_lines(lines: list[str]) -> str:
    fd, path = tempfile.mkstemp(prefix="qc-bench-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _tokens(database_url: str) -> list[str]:
    """A bearer token per seeded customer, signed like the server signs (no login: it is
    rate limited, and logging in is not what this measures)."""
    key = Settings(secret_key=SECRET).secret_key_value()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, login, name, role, secret_hash FROM users WHERE role = 'customer'"
        ).fetchall()
    now = Clock().now()
    return [
        issue_token(
            User(id=r[0], login=r[1], name=r[2], role=r[3], secret_hash=r[4]),
            key=key,
            now=now,
            ttl_s=6 * 3600,
        )[0]
        for r in rows
    ]


async def run(
    settings: Settings,
    *,
    concurrency: int = 32,
    duration: float = 10.0,
    warmup: float = 5.0,
    workers: tuple[int, ...] = (1, 2),
    repeats: int = 1,
    servers: tuple[str, ...] = ("granian",),
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    async with bench_stack(settings, stores=1, skus=500, pool=4, customers=concurrency) as stack:
        with psycopg.connect(stack.database_url) as conn:
            skus = [r[0] for r in conn.execute("SELECT sku_id FROM products ORDER BY sku_id")]
        tokens, skus_file = _write_lines(_tokens(stack.database_url)), _write_lines(skus)
        env = _env(stack.database_url, stack.redis_url)
        cpu = wrk.service_pids(stack.database_url, stack.redis_url)
        unsettled = 0
        try:
            for server, n in itertools.product(servers, workers):
                label = f"{server}, {n} worker{'s' if n > 1 else ''}"
                with (
                    serve_process(
                        "qc.bench.serving:bare_fastapi", env=env, workers=n, server=server
                    ) as bare,
                    serve_process(API, env=env, workers=n, server=server) as api,
                ):
                    flow_args = [tokens, skus_file, STORE, str(LINES)]
                    if warmup:  # a server that has run a while: pools filled, statements
                        # prepared on each connection (a fresh one parses and plans them)
                        wrk.run(
                            api.url,
                            "checkout.lua",
                            name="warm-up",
                            args=flow_args,
                            connections=concurrency,
                            per_connection_state=True,
                            duration=warmup,
                            timeout_s=10,
                        )
                    else:
                        wrk.run(api.url + "/healthz", duration=1)
                    rows = []
                    for _ in range(repeats):
                        ref = wrk.run(
                            bare.url + "/v1/bare/SKU00001",
                            name="bare FastAPI route (reference)",
                            connections=concurrency,
                            threads=2,
                            duration=duration,
                            cpu={"API": [bare.pid], **cpu},
                        )
                        flow = wrk.run(
                            api.url,
                            "checkout.lua",
                            name=f"complete order ({LINES + 2} requests)",
                            args=flow_args,
                            connections=concurrency,
                            per_connection_state=True,
                            duration=duration,
                            timeout_s=10,
                            cpu={"API": [api.pid], **cpu},
                        )
                        rows.append(_row(flow, ref))
                    results[label] = rows
                    unsettled += _await_payments(stack.database_url)
        finally:
            os.unlink(tokens)
            os.unlink(skus_file)
        await journal.drain(stack.engine, stack.redis, STORE)
        drift = await find_drift(stack.engine, stack.redis, STORE)
        cond = conditions(
            generator=f"wrk, {concurrency} connections (one flow each), {duration:g} s per run",
            warm_up=f"{warmup:g} s of the same flow first, not counted" if warmup else "none",
            lines_per_order=LINES,
            payment_latency_s=0.01,
            services="embedded" if stack.embedded else "external",
            load_before=" ".join(f"{x:.1f}" for x in os.getloadavg()),
            orders_still_paying_after_15_s=unsettled,
            books_after="agree (no drift)" if not drift else f"DRIFT: {len(drift)} records",
        )
        if drift:  # what differs, so a drift seen once can be chased
            cond["drift_first"] = "; ".join(
                f"{d.kind} {d.key}: PostgreSQL {d.postgres} Redis {d.redis}" for d in drift[:5]
            )
    _print(results, cond)
    return {"conditions": cond, "results": results}


def _await_payments(database_url: str, wait_s: float = 15.0) -> int:
    """Checkouts wrk left in flight when it stopped, still paying: wait for them before the
    server stops (stopping it would leave them to the next start's recovery, and the books
    to be compared half-way). Returns the orders still PLACED at the deadline."""
    deadline = time.monotonic() + wait_s
    while True:
        with psycopg.connect(database_url) as conn:
            placed = int(one_row(conn, "SELECT count(*) FROM orders WHERE status = 'PLACED'")[0])
        if placed == 0 or time.monotonic() > deadline:
            return placed
        time.sleep(0.1)


def _row(flow: wrk.WrkResult, ref: wrk.WrkResult) -> dict[str, Any]:
    orders = flow.flows / flow.seconds if flow.seconds else 0.0
    return {
        "orders_per_s": round(orders, 1),
        "requests_per_s": round(flow.per_second, 1),
        "request_p50_ms": round(flow.p50_ms, 1),
        "request_p99_ms": round(flow.p99_ms, 1),
        "failed_steps": flow.failures,
        "failed_by_kind": flow.failed,
        "errors": flow.errors,
        "reference_per_s": round(ref.per_second, 1),
        "requests_vs_reference": round(flow.per_second / ref.per_second, 3)
        if ref.per_second
        else 0.0,
        "cpu_percent": flow.cpu,
    }


def _print(results: dict[str, list[dict[str, Any]]], cond: dict[str, object]) -> None:
    console = Console()
    for label, rows in results.items():
        console.print(f"[bold]qc bench checkout: {label}[/bold]")
        for r in rows:
            console.print(
                f"  complete orders {r['orders_per_s']:,.1f}/s  requests {r['requests_per_s']:,.0f}/s"
                f" (p50 {r['request_p50_ms']} ms, p99 {r['request_p99_ms']} ms,"
                f" failed steps {r['failed_steps']})  bare FastAPI route {r['reference_per_s']:,.0f}/s"
                f" ({r['requests_vs_reference']:.1%} of it)"
            )
            if r["failed_by_kind"]:
                console.print(
                    "  failed steps: "
                    + ", ".join(f"{k.strip()} x{n}" for k, n in sorted(r["failed_by_kind"].items()))
                )
            console.print(
                "  CPU % of one core: " + ", ".join(f"{k} {v}" for k, v in r["cpu_percent"].items())
            )
    console.print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
