"""``qc bench ...``: the benchmarks' commands (each runs one module of ``qc.bench``)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from qc.terminal import fail
from server.kit.config import get_settings

bench_app = typer.Typer(help="benchmarks: figures with their conditions, side by side")
T = TypeVar("T")


def _run(bench: Coroutine[Any, Any, T]) -> T:
    """Run a benchmark; a refusal (its database in use, a server out of reach) is one
    line and exit code 2, not a traceback."""
    import asyncio

    from qc.bench.stack import BenchDatabaseInUse
    from server.kit.embedded import ServiceConfigError

    try:
        return asyncio.run(bench)
    except (BenchDatabaseInUse, ServiceConfigError) as exc:
        raise fail(str(exc)) from None


@bench_app.command("reserve")
def bench_reserve(
    ops: Annotated[int, typer.Option(min=100, help="operations per scenario")] = 4000,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 32,
    repeats: Annotated[int, typer.Option(min=1, help="runs per scenario; the median counts")] = 3,
    json_out: Annotated[str | None, typer.Option("--json", help="write figures here")] = None,
) -> None:
    """Reservations/s and p50/p99: engine vs trivial Lua vs PostgreSQL row lock."""
    import json

    from qc.bench.reserve import run

    figures = _run(run(get_settings(), ops=ops, concurrency=concurrency, repeats=repeats))
    if json_out:
        with open(json_out, "w") as fh:
            json.dump(figures, fh, indent=2)


def _write_json(path: str | None, figures: dict) -> None:
    if path:
        import json

        with open(path, "w") as fh:
            json.dump(figures, fh, indent=2)


@bench_app.command("catalog")
def bench_catalog(
    duration: Annotated[float, typer.Option(min=1, help="seconds of wrk per run")] = 5,
    connections: Annotated[int, typer.Option(min=1, max=1024)] = 64,
    repeats: Annotated[int, typer.Option(min=1)] = 3,
    workers: Annotated[list[int] | None, typer.Option(help="API workers (repeatable)")] = None,
    server: Annotated[
        list[str] | None,
        typer.Option(help="granian (what qc serve runs) and/or uvicorn (repeatable)"),
    ] = None,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """Browse routes under wrk vs a bare FastAPI route and a bare ASGI app, same server."""

    from qc.bench.catalog import run

    figures = run(
        get_settings(),
        duration=duration,
        connections=connections,
        repeats=repeats,
        workers=tuple(workers or (1, 2)),
        servers=tuple(server or ("granian",)),  # what qc serve runs
    )
    _write_json(json_out, _run(figures))


@bench_app.command("checkout")
def bench_checkout(
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="flows at once")] = 32,
    duration: Annotated[float, typer.Option(min=1, help="seconds per run")] = 10.0,
    warmup: Annotated[
        float, typer.Option(min=0, help="seconds of the same flow first, not counted")
    ] = 5.0,
    workers: Annotated[str, typer.Option(help="API worker counts, comma separated")] = "1,2",
    repeats: Annotated[int, typer.Option(min=1)] = 1,
    server: Annotated[
        list[str] | None, typer.Option(help="granian (what qc serve runs) and/or uvicorn")
    ] = None,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """Complete orders/s (cart, lines, checkout, payment, CONFIRMED) driven by wrk, with the
    bare FastAPI route under the same server as the reference."""

    from qc.bench.checkout import run

    counts = tuple(int(w) for w in workers.split(",") if w.strip())
    _write_json(
        json_out,
        _run(
            run(
                get_settings(),
                concurrency=concurrency,
                duration=duration,
                warmup=warmup,
                workers=counts,
                repeats=repeats,
                servers=tuple(server or ("granian",)),
            )
        ),
    )


@bench_app.command("dispatch")
def bench_dispatch(
    orders: Annotated[int, typer.Option(min=1)] = 500,
    riders: Annotated[int, typer.Option(min=1)] = 2000,
    fixes: Annotated[int, typer.Option(min=10)] = 3000,
    processes: Annotated[
        int, typer.Option(min=1, help="ingest processes, as API workers (and once from one)")
    ] = 2,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """Assignment latency (orders x riders) and location ingest fixes/s with fan-out."""

    from qc.bench.dispatch import run

    figures = run(get_settings(), orders=orders, riders=riders, fixes=fixes, processes=processes)
    _write_json(json_out, _run(figures))


@bench_app.command("flash")
def bench_flash(
    users: Annotated[int, typer.Option(min=10, help="customers in the crowd")] = 20_000,
    units: Annotated[int, typer.Option(min=1, max=5000, help="units on sale")] = 1000,
    workers: Annotated[int, typer.Option(min=1, help="API workers")] = 2,
    slots: Annotated[int, typer.Option(min=1, help="MAX_CONCURRENT_CHECKOUTS")] = 100,
    slot_seconds: Annotated[int, typer.Option(min=5, help="a checkout slot's length")] = 60,
    sockets: Annotated[int, typer.Option(min=0, help="customers waiting on a websocket")] = 5000,
    arrival_s: Annotated[float, typer.Option(min=0.0, help="the crowd arrives within")] = 10.0,
    connections: Annotated[int, typer.Option(min=4, help="client HTTP connections")] = 64,
    failure_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.05,
    abandon_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="admitted customers who never pay")
    ] = 0.005,
    regular_rate: Annotated[
        float, typer.Option(min=0.1, help="regular orders arriving a second, sale or not")
    ] = 10.0,
    regular_seconds: Annotated[float, typer.Option(min=1.0, help="baseline run length")] = 20.0,
    generators: Annotated[
        int,
        typer.Option(
            min=1, help="processes playing the crowd (fewer: each reads its answers later)"
        ),
    ] = 4,
    server: Annotated[
        str,
        typer.Option(
            help="the API's: granian (what qc serve runs) or uvicorn; the waiting room "
            "runs QC_WAITING_ROOM_SERVER's (uvicorn) unless that is empty"
        ),
    ] = "granian",
    waiting_room: Annotated[
        bool, typer.Option(help="the line on its own server (qc serve's waiting room)")
    ] = True,
    warm_auth: Annotated[
        bool, typer.Option(help="diagnostic: the crowd's auth states cached before the sale")
    ] = False,
    quiet: Annotated[
        int, typer.Option(min=1, help="customers of a quiet client (joins one at a time)")
    ] = 100,
    quiet_s: Annotated[
        float, typer.Option(min=0.0, help="the quiet client's joins spread over")
    ] = 100.0,
    generator_nice: Annotated[
        int,
        typer.Option(
            min=-20,
            max=0,
            help="the crowd's processes, each in a scheduling group of its own, this step "
            "ahead of the servers where allowed (a niceness; 0: beside them)",
        ),
    ] = 0,
    generator_apart: Annotated[
        bool,
        typer.Option(
            "--generator-apart/--generator-shared",
            help="diagnostic: --generator-shared keeps the crowd's processes in the servers' "
            "scheduling group, where they wait for a core behind the API's workers",
        ),
    ] = True,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """A flash-sale crowd over real HTTP and websockets: units sold, oversold, limits, FIFO,
    join/checkout latency, and regular checkout latency with and without the sale."""

    from qc.bench.flash import run as run_flash

    if generator_nice and not generator_apart:
        raise typer.BadParameter(
            "a step ahead needs groups of their own: --generator-nice with --generator-shared",
            param_hint="--generator-nice",
        )

    _write_json(
        json_out,
        _run(
            run_flash(
                get_settings(),
                users=users,
                units=units,
                workers=workers,
                slots=slots,
                slot_seconds=slot_seconds,
                sockets=sockets,
                arrival_s=arrival_s,
                connections=connections,
                failure_rate=failure_rate,
                abandon_rate=abandon_rate,
                regular_rate=regular_rate,
                regular_seconds=regular_seconds,
                generators=generators,
                server=server,
                waiting_room=waiting_room,
                warm_auth=warm_auth,
                quiet=quiet,
                quiet_s=quiet_s,
                generator_nice=generator_nice if generator_apart else None,
            )
        ),
    )


@bench_app.command("room")
def bench_room(
    joins: Annotated[int, typer.Option(min=10, help="joins of each kind (cold, warm)")] = 16_000,
    sockets: Annotated[int, typer.Option(min=1, help="sockets opened and held")] = 3000,
    connections: Annotated[int, typer.Option(min=1, help="client HTTP connections")] = 64,
    idle_s: Annotated[float, typer.Option(min=0.0, help="seconds the sockets are held")] = 30.0,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """The waiting room's CPU part by part: a join (auth cold, warm), the bare route's
    request under the same server, a socket's handshake and a held socket."""

    from qc.bench.room import run as run_room

    figures = run_room(
        get_settings(), joins=joins, sockets=sockets, connections=connections, idle_s=idle_s
    )
    _write_json(json_out, _run(figures))


@bench_app.command("replicas")
def bench_replicas(
    replicas: Annotated[str, typer.Option(help="replica counts behind HAProxy")] = "1,3",
    concurrency: Annotated[int, typer.Option(min=1, help="regular checkout flows")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="regular checkout run")] = 15.0,
    users: Annotated[int, typer.Option(min=10, help="flash customers, split over runs")] = 300,
    units: Annotated[int, typer.Option(min=1, help="flash units per run")] = 100,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """Regular checkout and a flash sale through HAProxy on 1 and on 3 API replicas."""

    from qc.bench.replicas import run

    counts = tuple(int(c) for c in replicas.split(",") if c.strip())
    figures = _run(
        run(
            get_settings(),
            counts=counts,
            concurrency=concurrency,
            seconds=seconds,
            users=users,
            units=units,
        )
    )
    _write_json(json_out, figures)


@bench_app.command("ops")
def bench_ops(
    active: Annotated[int, typer.Option(min=0, help="orders in flight")] = 600,
    delivered: Annotated[int, typer.Option(min=0, help="orders delivered earlier today")] = 6000,
    repeats: Annotated[int, typer.Option(min=3)] = 30,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """Control-tower feed: city snapshot build, diff and alert evaluation vs a bare query."""

    from qc.bench.ops import run_and_report

    _write_json(
        json_out,
        _run(run_and_report(get_settings(), active=active, delivered=delivered, repeats=repeats)),
    )


@bench_app.command("all")
def bench_all(
    quick: Annotated[
        bool, typer.Option(help="small sizes: a smoke run of every benchmark")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="run just these (repeatable), e.g. --only ops")
    ] = None,
    json_out: Annotated[str | None, typer.Option("--json")] = None,
) -> None:
    """Every benchmark in one run, then one table of all their figures and conditions."""

    from qc.bench.all import BENCHMARKS, run_all

    unknown = sorted(set(only or []) - set(BENCHMARKS))
    if unknown:
        raise fail(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    _run(run_all(get_settings(), quick=quick, only=only, json_path=json_out))
