"""``qc simulate``: one deterministic simulated day of the seeded city, and its report."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qc.aio import loop_factory
from qc.des.config import LEVERS, DesConfig, Policies
from qc.des.parts import Parts, build
from qc.des.report import DesReport

console = Console()


def _run_parts(config: DesConfig) -> Parts:
    from qc.des.runner import simulate_parts
    from qc.des.stack import embedded_services

    # uvloop where installed: events run one at a time, so the loop changes no figure
    with embedded_services() as services, asyncio.Runner(loop_factory=loop_factory()) as run:
        return run.run(simulate_parts(services, config))


def store_groups(config: DesConfig, workers: int) -> list[tuple[str, ...]]:
    """The city's stores in ``workers`` groups of neighbours (by latitude, then longitude):
    a customer is served only by a store of their group, so a border runs between groups,
    not through every neighbourhood."""
    from server.seed.bengaluru import STORES

    chosen = sorted(STORES[: config.stores], key=lambda s: (s[2], s[3]))
    size = -(-len(chosen) // workers)
    return [tuple(s[0] for s in chosen[i : i + size]) for i in range(0, len(chosen), size)]


def _run(config: DesConfig, workers: int = 1) -> DesReport:
    """One process for the city, or one per group of stores (each with its own private
    PostgreSQL and Valkey), their parts merged into one report."""
    started = time.perf_counter()
    if workers <= 1:
        parts = _run_parts(config)
    else:
        groups = [replace(config, only=g) for g in store_groups(config, workers)]
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(groups), mp_context=spawn) as pool:
            parts = Parts.merged(list(pool.map(_run_parts, groups)))
    return build(config, parts, time.perf_counter() - started)


def ablation_table(reports: dict[str, DesReport]) -> Table:
    table = Table(title="ablation: the same simulated day, each lever off in turn")
    columns = ("levers", "refused", "delivered", "within 10 min", "within 15 min", "p90",
               "orders/rider-h", "ETA MAE")  # fmt: skip
    for c in columns:
        table.add_column(c, justify="left" if c == "levers" else "right")
    for name, r in reports.items():
        table.add_row(
            name,
            f"{100 * (r.refused_share or 0):.1f}%",
            str(r.orders_delivered),
            f"{100 * (r.within_10_min or 0):.1f}%",
            f"{100 * (r.within_15_min or 0):.1f}%",
            f"{(r.order_to_door_p90_s or 0) / 60:.1f} min",
            f"{r.orders_per_rider_hour or 0:.2f}",
            f"{r.eta_mae_min or 0:.2f} min",
        )
    return table


def days_table(report: DesReport) -> Table:
    """Per local day: orders confirmed, and the night's replenishment before it."""
    table = Table(title="day by day (replenishment: the night before the day, 02:00-05:00)")
    for c in ("day", "orders confirmed", "replenishment orders", "units received"):
        table.add_column(c, justify="left" if c == "day" else "right")
    rows: dict[str, dict[str, int]] = {}
    for key, n in report.counters.items():
        kind, _, what = key.partition(": ")
        if kind.startswith(("day ", "night ")):
            rows.setdefault(kind.split(" ", 1)[1], {})[what] = n
    for day, counts in sorted(rows.items()):
        table.add_row(
            day,
            *(
                str(counts.get(k, 0))
                for k in ("orders confirmed", "replenishment orders", "units received")
            ),
        )
    return table


def simulate(
    seed: Annotated[int, typer.Option(help="random seed: same seed, same figures")] = 1,
    stores: Annotated[int, typer.Option(min=1, max=14, help="stores of the seeded city")] = 12,
    hours: Annotated[
        float, typer.Option(min=0.05, max=24, help="hours of demand (of the last day)")
    ] = 24.0,
    days: Annotated[
        int,
        typer.Option(
            min=1,
            max=366,
            help="days simulated one after the other (over 1: sales rolled up hourly into "
            "sales_history, the daily replenishment job at 02:00, its orders received 3 h "
            "later; demand on its weekday curve)",
        ),
    ] = 1,
    history_out: Annotated[
        str | None,
        typer.Option(
            help="write the sales history the run wrote (with stock-out hours and the "
            "expected demand) to this .npz, for `qc forecast backtest --source sim`"
        ),
    ] = None,
    start: Annotated[float, typer.Option(min=0, max=23.99, help="local hour the run starts")] = 0.0,
    orders_per_store_day: Annotated[
        float,
        typer.Option(
            min=1, help="daily orders per store on a Monday (hour and weekday shape them)"
        ),
    ] = 1250.0,
    skus: Annotated[
        int, typer.Option(min=50, max=5000, help="SKUs in the seeded catalogue")
    ] = 1200,
    push: Annotated[bool, typer.Option(help="push work (off: pickers and riders poll)")] = True,
    preassign: Annotated[bool, typer.Option(help="rider assigned while picking")] = True,
    batching: Annotated[bool, typer.Option(help="up to 3 drops per trip")] = True,
    dynamic_radius: Annotated[bool, typer.Option(help="radius shrinks when overloaded")] = True,
    walk_order: Annotated[bool, typer.Option(help="S-shaped walk (off: aisle order)")] = True,
    promise: Annotated[
        float, typer.Option(min=1, help="minutes to the door a store must reach to serve")
    ] = 10.0,
    ablation: Annotated[
        bool, typer.Option(help="run all levers on, then each off in turn; print the table")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="processes, each simulating a group of neighbouring stores (1: the whole "
            "city in one, every store a candidate for every customer)",
        ),
    ] = 1,
    json_out: Annotated[
        str | None, typer.Option("--json", help="write the report (or all reports) here")
    ] = None,
) -> None:
    """A deterministic discrete-event day (or days): the server's own code on a manual clock
    against real PostgreSQL and Redis (embedded, private), one event at a time."""
    if history_out and (days < 2 or workers > 1):
        raise typer.BadParameter("--history-out needs --days 2 or more and one worker")
    policies = Policies(
        push=push,
        preassign=preassign,
        batching=batching,
        dynamic_radius=dynamic_radius,
        walk_order=walk_order,
    )
    config = DesConfig(
        seed=seed,
        stores=stores,
        hours=hours,
        days=days,
        nightly=days > 1,
        history_out=history_out,
        start_hour=start,
        orders_per_store_day=orders_per_store_day,
        skus=skus,
        policies=policies,
        promise_min=promise,
    )
    started = time.perf_counter()
    if not ablation:
        report = _run(config, workers)
        report.render(console)
        if days > 1:
            console.print(days_table(report))
        if json_out:
            report.write_json(json_out)
        console.print(f"wall time {time.perf_counter() - started:.1f} s")
        return
    reports: dict[str, DesReport] = {}
    for lever in (None, *LEVERS):
        name = "all on" if lever is None else f"{lever} off"
        run = config if lever is None else replace(config, policies=Policies().without(lever))
        reports[name] = _run(run, workers)
        console.print(f"{name}: {reports[name].wall_s:.0f} s wall")
    reports["all on"].render(console)
    console.print(ablation_table(reports))
    if json_out:
        Path(json_out).write_text(
            json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=2, sort_keys=True)
        )
    console.print(f"wall time {time.perf_counter() - started:.1f} s")
