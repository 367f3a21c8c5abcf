"""``qc bench catalog``: the browse routes under wrk, beside the references in the same run.

One seeded store of 5,000 SKUs. For each server asked for (granian by default, what ``qc serve``
runs; uvicorn too if asked) and worker count, three
servers run side by side with the same settings: a bare ASGI app (the server's limit), a
bare FastAPI route (what any FastAPI route costs) and the API as ``qc serve`` runs it
(``qc.serving``: its start-up set aside from the garbage collector). Each repeat drives every
scenario with the same wrk settings (``qc.bench.wrk``); a scenario's ratio is the median
over repeats of its req/s over the bare FastAPI route's in the same repeat. The bare ASGI
figure is the proof that wrk is not the limit (it drives that app far faster than any
route), and each row shows the CPU split (wrk, API workers, PostgreSQL, Valkey, the rest
of the machine, in % of one core). After each repeat the resident memory of every API
worker is read (MiB): equal figures across repeats mean no growth.

Scenarios: product detail (a random SKU per request), category page (edge-cacheable, no
stock), product list (40 items with live stock, a random category), search (a brand word,
a prefix or a typo), and search again at 8 connections (its latency when not queued
behind 64).
"""

from __future__ import annotations

import os
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg
from rich.console import Console
from rich.table import Table

from qc.bench import wrk
from qc.bench.harness import conditions
from qc.bench.serving import Served, serve_process
from qc.bench.stack import bench_stack
from server.kit.config import Settings

STORE = "BLR-KOR"
BARE_ASGI = "bare ASGI (limit)"
BARE_FASTAPI = "bare FastAPI route"


def server_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "QC_DATABASE_URL": database_url,
        "QC_REDIS_URL": redis_url,
        "QC_SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "QC_LOG_JSON": "true",
        "QC_LOG_LEVEL": "WARNING",
        "QC_PAYMENT_LATENCY_S": "0.01",
        "QC_BACKGROUND_LOOPS": "false",  # reads only: no sweeper or relay in the figures
        # wrk is one client address: the per-address search limit would measure 429s
        "QC_SEARCH_LIMIT_PER_ADDRESS": "1000000000/minute",
    }


@dataclass
class Scenario:
    name: str
    paths: list[str]
    connections: int | None = None  # None: the run's
    target: str = "api"  # api, asgi, fastapi


@dataclass
class Figures:
    runs: dict[str, list[wrk.WrkResult]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    memory_mib: list[list[float]] = field(default_factory=list)


def scenarios(database_url: str) -> list[Scenario]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT p.sku_id, p.brand, p.name, p.category_id FROM products p "
            "JOIN store_inventory i ON i.sku_id = p.sku_id AND i.store_id = %s "
            "ORDER BY p.sku_id",
            (STORE,),
        ).fetchall()
    rng = random.Random(11)
    skus = [r[0] for r in rows]
    categories = sorted({r[3] for r in rows})
    words: list[str] = []
    for _, brand, name, _ in rng.sample(rows, min(60, len(rows))):
        b = brand.split()[0].lower()
        n = name.split()[-1].lower()
        words += [b, b[:3], b[:2] + b[2:3] + b[2:] if len(b) > 3 else b, f"{b} {n}"]
    search = [f"/v1/stores/{STORE}/search?q={w.replace(' ', '+')}" for w in words]
    return [
        Scenario(BARE_ASGI, ["/"], target="asgi"),
        Scenario(BARE_FASTAPI, [f"/v1/bare/{s}" for s in skus], target="fastapi"),
        Scenario("product detail", [f"/v1/stores/{STORE}/products/{s}" for s in skus]),
        Scenario(
            "category page", [f"/v1/stores/{STORE}/categories/{c}?limit=40" for c in categories]
        ),
        Scenario(
            "product list (40, live stock)",
            [f"/v1/stores/{STORE}/products?category={c}&limit=40" for c in categories],
        ),
        Scenario("search", search),
        Scenario("search (8 connections)", search, connections=8),
    ]


def worker_rss_mib(server: Served) -> list[float]:
    """Resident memory of each worker process of ``server`` (the supervisor excluded)."""
    try:
        root = psutil.Process(server.pid)
        workers = [
            p
            for p in root.children(recursive=True)
            if not any("resource_tracker" in part for part in p.cmdline())
        ] or [root]  # uvicorn with one worker serves in its own process
        return sorted(round(p.memory_info().rss / 2**20, 1) for p in workers)
    except psutil.Error:
        return []


def measure(
    servers: dict[str, Served],
    plan: list[Scenario],
    *,
    duration: float,
    connections: int,
    repeats: int,
    cpu: dict[str, list[int]],
) -> Figures:
    figures = Figures()
    files = {s.name: wrk.paths_file(s.paths) for s in plan}
    try:
        for s in plan:  # warm-up: until every worker answers (its catalogue loaded)
            for _ in range(10):
                try:
                    r = wrk.run(
                        servers[s.target].url, "paths.lua", args=[files[s.name]], duration=1
                    )
                except RuntimeError:  # not accepting yet (a starved machine)
                    continue
                if r.ops > 0 and r.errors == 0:
                    break
        for _ in range(repeats):
            base = 0.0
            for s in plan:
                served = servers[s.target]
                r = wrk.run(
                    served.url,
                    "paths.lua",
                    name=s.name,
                    args=[files[s.name]],
                    connections=s.connections or connections,
                    threads=2,
                    duration=duration,
                    cpu={"API": [served.pid], **cpu},
                )
                figures.runs.setdefault(s.name, []).append(r)
                if s.name == BARE_FASTAPI:
                    base = r.per_second
                if base:
                    figures.ratios.setdefault(s.name, []).append(r.per_second / base)
            figures.memory_mib.append(worker_rss_mib(servers["api"]))
    finally:
        for f in files.values():
            os.unlink(f)
    return figures


def _median_run(runs: list[wrk.WrkResult]) -> wrk.WrkResult:
    return sorted(runs, key=lambda r: r.per_second)[len(runs) // 2]


def _cpu_us(r: wrk.WrkResult) -> float:
    return r.cpu.get("API", 0) / 100 * r.seconds / r.ops * 1e6 if r.ops else 0.0


def summary(figures: Figures) -> list[dict[str, Any]]:
    out = []
    base_cost = statistics.median(_cpu_us(x) for x in figures.runs[BARE_FASTAPI])
    asgi = _median_run(figures.runs[BARE_ASGI]).per_second
    for name, runs in figures.runs.items():
        r = _median_run(runs)
        ratio = statistics.median(figures.ratios.get(name, [0.0]))
        cost = statistics.median(_cpu_us(x) for x in runs)
        out.append(
            r.as_dict()
            | {
                "vs_fastapi": round(ratio, 3),
                "vs_asgi": round(r.per_second / asgi, 3) if asgi else 0.0,
                # the API's CPU per request: what a request costs, however busy the machine
                "api_cpu_us": round(cost),
                "cpu_vs_fastapi": round(base_cost / cost, 3) if cost else 0.0,
                "cpu": r.cpu,
                "connections": r.connections,
                "runs_per_second": [round(x.per_second) for x in runs],
            }
        )
    return out


def print_summary(title: str, rows: list[dict[str, Any]], memory: list[list[float]]) -> None:
    table = Table(title=title)
    for column in (
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "vs FastAPI",
        "vs ASGI",
        "errors",
        "API CPU µs/req",
        "CPU vs FastAPI",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    table.add_column("CPU % of a core: wrk / API / PG / Valkey / other", justify="right")
    for r in rows:
        cpu = r["cpu"]
        table.add_row(
            f"{r['name']}" + (f" [c{r['connections']}]" if r["connections"] != 64 else ""),
            f"{r['per_second']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['vs_fastapi']:.0%}",
            f"{r['vs_asgi']:.0%}",
            str(r["errors"]),
            f"{r['api_cpu_us']:,}",
            f"{r['cpu_vs_fastapi']:.0%}",
            " / ".join(
                f"{cpu.get(k, 0):.0f}" for k in ("wrk", "API", "PostgreSQL", "Valkey", "other")
            ),
        )
    console = Console()
    console.print(table)
    console.print(
        "API worker RSS (MiB) after each repeat: "
        + " | ".join(", ".join(f"{m:.0f}" for m in rep) for rep in memory)
    )


async def run(
    settings: Settings,
    *,
    duration: float = 5.0,
    connections: int = 64,
    repeats: int = 3,
    workers: tuple[int, ...] = (1, 2),
    servers: tuple[str, ...] = ("granian",),
) -> dict[str, Any]:
    """Every scenario for each server and worker count; figures, ratios, memory."""
    results: dict[str, list[dict[str, Any]]] = {}
    memory: dict[str, list[list[float]]] = {}
    async with bench_stack(settings, stores=1, skus=5000, pool=4) as stack:
        env = server_env(stack.database_url, stack.redis_url)
        plan = scenarios(stack.database_url)
        cpu = wrk.service_pids(stack.database_url, stack.redis_url)
        for server in servers:
            for n in workers:
                label = f"{server}, {n} worker{'s' if n > 1 else ''}"
                with (
                    serve_process(
                        "qc.bench.serving:bare_app",
                        env=env,
                        workers=n,
                        factory=False,
                        server=server,
                    ) as asgi,
                    serve_process(
                        "qc.bench.serving:bare_fastapi", env=env, workers=n, server=server
                    ) as fastapi,
                    serve_process(
                        "qc.serving:create_served_app", env=env, workers=n, server=server
                    ) as api,
                ):
                    figures = measure(
                        {"asgi": asgi, "fastapi": fastapi, "api": api},
                        plan,
                        duration=duration,
                        connections=connections,
                        repeats=repeats,
                        cpu=cpu,
                    )
                results[label] = summary(figures)
                memory[label] = figures.memory_mib
        cond = conditions(
            generator=f"wrk {connections} connections, 2 threads, {duration:g} s per run",
            repeats=repeats,
            store_skus=5000,
            services="embedded" if stack.embedded else "external",
            load_before=" ".join(f"{x:.1f}" for x in os.getloadavg()),
        )
    for label, rows in results.items():
        print_summary(f"qc bench catalog: {label} (medians of {repeats})", rows, memory[label])
    Console().print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
    return {"conditions": cond, "results": results, "memory_mib": memory}
