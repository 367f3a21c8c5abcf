"""``qc forecast ...`` and ``qc replenish ...``: register with

    app.add_typer(forecast_app, name="forecast")
    app.add_typer(replenish_app, name="replenish")

``qc seed --history-days N`` can call :func:`server.forecast.sales_history.seed_history`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import redis.asyncio as aioredis
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from sqlmodel.ext.asyncio.session import AsyncSession

from qc.terminal import console, database, fail
from server.kit.config import Settings, get_settings
from server.kit.embedded import ServiceConfigError

if TYPE_CHECKING:
    from server.forecast.estimator import ForecastConfig

T = TypeVar("T")

forecast_app = typer.Typer(
    help="demand forecasting: sales history, external factors, forecasts, backtests",
    no_args_is_help=True,
)
replenish_app = typer.Typer(
    help="replenishment: plan orders from the latest forecasts, dispatch and receive them",
    no_args_is_help=True,
)
out = Console()


def _now(settings: Settings) -> datetime:
    from server.kit.clock import Clock

    return Clock(speed=settings.clock_speed, anchor=settings.clock_anchor).now()


def _parse_origin(value: str | None, settings: Settings) -> datetime:
    """``None``: today's IST midnight by the server clock; a date: that day's IST midnight;
    a datetime without zone: IST."""
    from server.forecast.history import IST, ist_midnight

    if value is None:
        return ist_midnight(_now(settings))
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=IST)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--origin {value!r}: want YYYY-MM-DD or an ISO datetime") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=IST)


def _config(threads: int | None, train_rows: int | None) -> ForecastConfig:
    from server.forecast.estimator import ForecastConfig

    base = ForecastConfig()
    return ForecastConfig(
        threads=threads, max_train_rows=train_rows if train_rows else base.max_train_rows
    )


class FactorChoice(StrEnum):
    synthetic = "synthetic"
    database = "database"


Threads = Annotated[
    int | None, typer.Option(min=1, help="OpenMP threads for the model (default: all cores)")
]
TrainRows = Annotated[
    int | None, typer.Option(min=10_000, help="sampled training rows (default 1,200,000)")
]
StoresOpt = Annotated[int | None, typer.Option(min=1, help="only the first N stores by id")]
SkusOpt = Annotated[int | None, typer.Option(min=1, help="only the first N SKUs by id")]


@forecast_app.command("history")
def history(
    days: Annotated[int, typer.Option(min=1, max=730, help="days of hourly history")] = 90,
    seed: Annotated[int, typer.Option(help="same seed, same history")] = 42,
    end: Annotated[
        str | None, typer.Option(help="first day NOT in the history (default: today, IST)")
    ] = None,
    factors: Annotated[
        FactorChoice,
        typer.Option(help="synthetic: generate weather/matches/sales first; database: as is"),
    ] = FactorChoice.synthetic,
    stores: StoresOpt = None,
    skus: SkusOpt = None,
) -> None:
    """Generate synthetic hourly sales for the seeded city and bulk-load them.

    The window ends at --end (default today, IST) and replaces earlier rows of that window.
    """
    from server.forecast.history import IST
    from server.forecast.sales_history import load_history

    settings = get_settings()
    url = database(settings)
    try:
        last = date.fromisoformat(end) if end else _now(settings).astimezone(IST).date()
    except ValueError:
        raise fail(f"--end {end!r}: want YYYY-MM-DD") from None
    try:
        result = load_history(
            url,
            start=last - timedelta(days=days),
            days=days,
            seed=seed,
            stores=stores,
            skus=skus,
            factors=factors.value,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(result.describe())


def _import(kind: str, file: Path) -> None:
    from server.forecast import inputs
    from server.forecast.factors import CsvError

    loaders = {
        "weather": inputs.import_weather,
        "events": inputs.import_events,
        "flash": inputs.import_flash_sales,
    }
    url = database(get_settings())
    try:
        count = loaders[kind](url, file)
    except CsvError as exc:
        raise fail(str(exc)) from None
    console.print(f"imported {count} {kind} row(s) from {file}")


FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@forecast_app.command("import-weather")
def import_weather(file: FileArg) -> None:
    """Import daily rain: CSV city,date,rain_mm,rainy (city id or name; mm and/or flag)."""
    _import("weather", file)


@forecast_app.command("import-events")
def import_events(file: FileArg) -> None:
    """Import events: CSV date,start_hour[,kind,name,city,duration_hours] (IST hours)."""
    _import("events", file)


@forecast_app.command("import-flash")
def import_flash(file: FileArg) -> None:
    """Import flash sales: CSV date,sku_id[,store_ids] (store ids split by ';', '*': all)."""
    _import("flash", file)


@forecast_app.command("run")
def run(
    origin: Annotated[
        str | None,
        typer.Option(help="forecast from this IST hour (default: today's IST midnight)"),
    ] = None,
    days: Annotated[int, typer.Option(min=8, help="days of history to learn from")] = 90,
    threads: Threads = None,
    train_rows: TrainRows = None,
    stores: StoresOpt = None,
    skus: SkusOpt = None,
    allow_stale: Annotated[
        bool, typer.Option(help="refit even if the newest sales hour is over a day old")
    ] = False,
) -> None:
    """Fit on the stored history and write next-24 h / next-72 h forecasts per store x SKU.

    Refuses when the newest sales hour is more than a day before the origin (the sales
    roll-up is not running), unless --allow-stale."""
    from server.forecast.runs import run_forecast

    settings = get_settings()
    url = database(settings)
    try:
        result = run_forecast(
            url,
            origin=_parse_origin(origin, settings),
            days=days,
            config=_config(threads, train_rows),
            stores=stores,
            skus=skus,
            allow_stale=allow_stale,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(result.describe())


class SourceChoice(StrEnum):
    both = "both"
    generator = "generator"
    second = "second"
    database = "database"
    sim = "sim"


@forecast_app.command("backtest")
def backtest(
    source: Annotated[
        SourceChoice,
        typer.Option(
            help="generator: the seed's history.py; second: the source built apart from the "
            "model (level shifts, stock-outs, promotions); both; database: the stored history; "
            "sim: the history a multi-day `qc simulate --history-out` wrote (--history)"
        ),
    ] = SourceChoice.both,
    history: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="--source sim: the run's .npz"),
    ] = None,
    stores: Annotated[int, typer.Option(min=1, help="stores in the sample")] = 2,
    skus: Annotated[int, typer.Option(min=10, help="SKUs per store in the sample")] = 100,
    days: Annotated[int, typer.Option(min=35, help="days of history")] = 70,
    origins: Annotated[int, typer.Option(min=2, max=30, help="midnight origins")] = 12,
    start: Annotated[str, typer.Option(help="first day of a synthetic history")] = "2025-01-06",
    seed: int = 0,
    boot: Annotated[int, typer.Option(min=100, help="bootstrap resamples")] = 1000,
    threads: Threads = 1,
    train_rows: Annotated[
        int, typer.Option(min=10_000, help="qc model: sampled training rows per fit")
    ] = 40_000,
) -> None:
    """Rolling-origin evaluation: qc's model, seasonal naive, 4-week average, seasonal ES
    (statsforecast), LightGBM and the floor; WAPE / MAE / RMSSE on 24 h and 72 h totals,
    stock-out rates of the reorder rules; bootstrap CIs over origins."""
    from server.forecast import eval_sources as es
    from server.forecast.baselines import INSTALL
    from server.forecast.estimator import ForecastConfig
    from server.forecast.evaluate import evaluate, spread_origins

    if (source == SourceChoice.sim) != (history is not None):
        raise fail("--history FILE goes with --source sim (and only with it)")
    missing = [m for m in ("pandas", "statsforecast", "lightgbm") if not _importable(m)]
    if missing:
        raise fail(f"the baselines need {', '.join(missing)}: {INSTALL}")
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise fail(f"--start {start!r}: want YYYY-MM-DD") from None
    config = ForecastConfig(max_train_rows=train_rows, max_iter=100, threads=threads)
    kinds = {
        SourceChoice.both: (es.GENERATOR, es.SECOND),
        SourceChoice.generator: (es.GENERATOR,),
        SourceChoice.second: (es.SECOND,),
        SourceChoice.database: (es.DATABASE,),
        SourceChoice.sim: (es.SIM,),
    }[source]
    for kind in kinds:
        try:
            if kind == es.DATABASE:
                src = es.database_source(
                    database(get_settings()), days=days, stores=stores, skus=skus
                )
            elif kind == es.SIM:
                assert history is not None
                src = es.sim_source(history)
            else:
                make = es.generator_source if kind == es.GENERATOR else es.second_source
                src = make(stores, skus, days, first, seed)
            days_at = spread_origins(src.history.days, origins)
            report = evaluate(
                src,
                origins=days_at,
                config=config,
                seed=seed,
                boot=boot,
                progress=lambda msg: console.print(msg, style="dim"),
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
        out.print(report.format(), highlight=False, soft_wrap=True)
        out.print()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --------------------------------------------------------------------------- replenish


def _in_transaction(
    work: Callable[[AsyncSession, aioredis.Redis | None], Awaitable[T]], *, redis: bool
) -> T:
    """Run ``work`` in one committed unit of work (with Redis when it moves stock)."""
    from server.kit import db
    from server.kit.errors import DomainError
    from server.kit.redis import create_redis, resolve_redis_url

    settings = get_settings()
    url = database(settings)
    redis_url = None
    if redis:
        try:
            redis_url = resolve_redis_url(settings)
        except ServiceConfigError as exc:
            raise fail(str(exc)) from None

    async def main() -> T:
        engine = db.create_engine(url, settings)
        client = create_redis(redis_url) if redis_url else None
        try:
            async with db.transaction(db.session_maker(engine)) as session:
                return await work(session, client)
        finally:
            if client is not None:
                await client.aclose()
            await engine.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        raise fail(exc.detail) from None


@replenish_app.command("run")
def replenish_run(
    store: Annotated[str | None, typer.Option(help="one store (default: all)")] = None,
    show: Annotated[int, typer.Option(min=0, help="order lines to print")] = 40,
) -> None:
    """Apply the reorder rule to current stock and the latest forecasts; write PLANNED
    orders and print them."""
    from server.forecast.service import ReplenishmentPlan, plan_replenishment

    now = _now(get_settings())

    async def work(session: AsyncSession, _: aioredis.Redis | None) -> ReplenishmentPlan:
        return await plan_replenishment(session, now=now, store_id=store)

    result = _in_transaction(work, redis=False)
    table = Table(title=f"replenishment orders planned ({len(result.lines)})", box=box.SIMPLE)
    table.add_column("id (for dispatch)", no_wrap=True, min_width=36)
    for name in ("store", "sku", "avail", "transit", "cap", "case", "24 h", "72 h"):
        table.add_column(name, justify="left" if name in ("store", "sku") else "right")
    table.add_column("qty", justify="right", style="bold")
    table.add_column("cases", justify="right")
    for line in result.lines[:show]:
        p, o = line.position, line.order
        table.add_row(
            str(o.replenishment_id),
            p.store_id,
            p.sku_id,
            str(p.available),
            str(p.in_transit),
            str(p.max_capacity),
            str(p.case_pack),
            f"{o.forecast_24h:.1f}",
            f"{o.forecast_72h:.1f}",
            str(o.quantity),
            str(o.cases),
        )
    # the full id must show (it is what `qc replenish dispatch` takes): never narrower
    # than the table, even in a pipe, where rich would assume 80 columns
    Console(width=max(out.width, 120)).print(table)
    if len(result.lines) > show:
        out.print(f"... and {len(result.lines) - show} more")
    missing = sorted(s for s, at in result.forecast_at.items() if at is None)
    reasons = ", ".join(f"{r.value}: {n}" for r, n in sorted(result.reasons.items()))
    console.print(f"{result.positions} positions ({reasons}); {len(result.lines)} orders planned")
    if missing:
        console.print(f"[yellow]no forecast yet for {', '.join(missing)}: `qc forecast run`[/]")


def _replenishment_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise fail(f"{value!r} is not a replenishment id (a UUID)") from None


@replenish_app.command("dispatch")
def replenish_dispatch(
    replenishment_id: Annotated[str, typer.Argument(help="the order's id")],
) -> None:
    """Send a PLANNED order: its units go in transit to the store."""
    from server.forecast.service import dispatch

    rid = _replenishment_id(replenishment_id)
    now = _now(get_settings())

    async def work(session: AsyncSession, redis: aioredis.Redis | None) -> str:
        assert redis is not None
        order = await dispatch(session, redis, replenishment_id=rid, now=now)
        return f"{order.replenishment_id}: {order.quantity} x {order.sku_id} in transit to {order.store_id}"

    console.print(_in_transaction(work, redis=True))


@replenish_app.command("receive")
def replenish_receive(
    replenishment_id: Annotated[str, typer.Argument(help="the order's id")],
) -> None:
    """A DISPATCHED order arrived: in transit -> available, status RECEIVED."""
    from server.forecast.service import receive

    rid = _replenishment_id(replenishment_id)
    now = _now(get_settings())

    async def work(session: AsyncSession, redis: aioredis.Redis | None) -> str:
        assert redis is not None
        order = await receive(session, redis, replenishment_id=rid, now=now)
        return f"{order.replenishment_id}: {order.quantity} x {order.sku_id} received at {order.store_id}"

    console.print(_in_transaction(work, redis=True))


@replenish_app.command("simulate")
def replenish_simulate(
    stores: Annotated[int, typer.Option(min=1, help="stores in the sample")] = 2,
    skus: Annotated[int, typer.Option(min=10, help="SKUs per store in the sample")] = 60,
    days: Annotated[int, typer.Option(min=3, max=92, help="days simulated")] = 30,
    history_days: Annotated[int, typer.Option(min=35, help="history before the month")] = 42,
    start: Annotated[str, typer.Option(help="first day of the history")] = "2025-01-06",
    seed: int = 0,
    refit_days: Annotated[int, typer.Option(min=1, help="refit qc's model every N days")] = 7,
    threads: Threads = 1,
    train_rows: Annotated[int, typer.Option(min=10_000, help="rows per fit")] = 40_000,
) -> None:
    """A closed-loop month (deterministic, seeded): the daily job with the seed rule, the
    95 % quantile rule and fixed min/max; stock-out hours, lost sales, waste, over capacity."""
    from qc.replenish_sim.month import format_outcomes, run_month
    from server.forecast.estimator import ForecastConfig

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise fail(f"--start {start!r}: want YYYY-MM-DD") from None
    config = ForecastConfig(max_train_rows=train_rows, max_iter=100, threads=threads)
    results = run_month(
        stores=stores,
        skus=skus,
        history_days=history_days,
        days=days,
        start=first,
        seed=seed,
        refit_days=refit_days,
        config=config,
        progress=lambda msg: console.print(msg, style="dim"),
    )
    out.print(
        format_outcomes(results, start=first, history_days=history_days),
        highlight=False,
        soft_wrap=True,
    )
