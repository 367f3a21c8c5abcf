"""The ``qc`` command: migrate, seed, serve, token, demo, simulate, forecast, bench."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qc import serving
from qc.bench.cli import bench_app
from qc.des.cli import simulate
from qc.forecast_cli import forecast_app, replenish_app
from qc.terminal import console, database, fail
from server.kit.config import Settings, get_settings
from server.kit.embedded import ServiceConfigError

app = typer.Typer(
    help="qc: quick-commerce operations suite", no_args_is_help=True, pretty_exceptions_enable=False
)


def _redis(settings: Settings) -> str:
    from server.kit.redis import resolve_redis_url

    try:
        return resolve_redis_url(settings)
    except ServiceConfigError as exc:
        raise fail(str(exc)) from None


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    database(get_settings())
    console.print("schema at head")


def _print_logins(logins: dict[str, str]) -> None:
    table = Table(title="demo logins (role: login / secret)")
    table.add_column("role")
    table.add_column("example login / secret")
    for role, cred in logins.items():
        table.add_row(role, cred)
    Console().print(table)


@app.command()
def seed(
    seed: Annotated[int, typer.Option(help="random seed: same seed, same city")] = 42,
    stores: Annotated[int, typer.Option(min=1, max=14)] = 12,
    skus: Annotated[int, typer.Option(min=10, max=6000)] = 5000,
    riders: Annotated[int, typer.Option(min=1)] = 120,
    customers: Annotated[int, typer.Option(min=1)] = 50,
    reset: Annotated[bool, typer.Option(help="delete every row first")] = False,
    history_days: Annotated[
        int, typer.Option(min=0, max=365, help="also generate this many days of sales history")
    ] = 0,
) -> None:
    """Build the demo Bengaluru: stores, catalogue, layout, stock, staff, riders, customers."""
    from server.seed.generate import database_is_empty, reset_database, seed_demo_city

    url = database(get_settings())
    if reset:
        reset_database(url)
    elif not database_is_empty(url):
        raise fail("the database already holds a city; add --reset to rebuild it")
    started = time.perf_counter()
    summary = seed_demo_city(
        url, seed=seed, stores=stores, skus=skus, riders=riders, customers=customers
    )
    console.print(
        f"seeded {summary.stores} stores, {summary.products} SKUs, "
        f"{summary.inventory_rows} stock rows, {summary.riders} riders, "
        f"{summary.pickers} pickers, {summary.customers} customers "
        f"in {time.perf_counter() - started:.1f} s"
    )
    _print_logins(summary.logins)
    if history_days:
        from server.forecast.sales_history import seed_history

        started = time.perf_counter()
        seed_history(url, history_days, seed)
        console.print(
            f"sales history: {history_days} days in {time.perf_counter() - started:.1f} s"
        )


def _prepare_stack(settings: Settings, *, seed_demo: bool) -> tuple[str, str]:
    """Start (or reach) PostgreSQL and Redis, migrate, and seed an empty database with the
    demo city only when asked (its logins are public: never in production)."""
    from server.seed.generate import database_is_empty, seed_demo_city

    db_url = database(settings)
    redis_url = _redis(settings)
    if database_is_empty(db_url):
        if seed_demo:
            console.print("empty database: seeding the demo city ...")
            _print_logins(seed_demo_city(db_url).logins)
        else:
            console.print(
                "empty database: no city and no logins. `qc seed` (or `qc serve --seed-demo`)"
                " loads the demo city with its public demo logins; never in production."
            )
    # workers inherit the resolved URLs, so every process uses the same servers
    os.environ["QC_DATABASE_URL"] = db_url
    os.environ["QC_REDIS_URL"] = redis_url
    os.environ.setdefault("QC_SECRET_KEY", settings.secret_key_value())
    # one anchor for every worker, so a sped-up clock reads the same in all of them
    anchor = settings.clock_anchor if settings.clock_anchor is not None else time.time()
    os.environ.setdefault("QC_CLOCK_ANCHOR", str(anchor))
    get_settings.cache_clear()
    return db_url, redis_url


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server worker processes")] = 1,
    server: Annotated[
        serving.Server,
        typer.Option(
            help="granian (faster, README Benchmarks) or uvicorn; a waiting room runs "
            "QC_WAITING_ROOM_SERVER's (uvicorn) unless that is empty"
        ),
    ] = "granian",
    seed_demo: Annotated[
        bool, typer.Option(help="seed an empty database with the demo city and its logins")
    ] = False,
    redis_cluster: Annotated[
        int,
        typer.Option(
            min=0, help="embedded: run on a Valkey Cluster of this many masters (0: one server)"
        ),
    ] = 0,
    waiting_room: Annotated[
        bool,
        typer.Option(
            "--waiting-room",
            help="serve only a flash sale's waiting room (its line and socket), as its own "
            "deployment does; the API's QC_WAITING_ROOM_URL sends the crowd here",
        ),
    ] = False,
) -> None:
    """Run the API on the embedded (or configured) stack."""
    if redis_cluster:  # QC_REDIS_CLUSTER for this process; its workers get the cluster's URL
        os.environ["QC_REDIS_CLUSTER"] = str(redis_cluster)
        get_settings.cache_clear()
    _prepare_stack(get_settings(), seed_demo=seed_demo)
    if waiting_room:
        room_server = serving.room_server(get_settings(), server)
        console.print(f"waiting room on http://{host}:{port}  ({room_server})")
        serving.run_room_alone(room_server, host=host, port=port, workers=workers)
        return
    console.print(f"API on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs, {server})")
    serving.run(server, host=host, port=port, workers=workers)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="interface for the API")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port for the API")] = 8000,
    speed: Annotated[
        float, typer.Option(min=1.0, max=60.0, help="the world runs this many times faster")
    ] = 10.0,
    headless: Annotated[
        bool, typer.Option(help="no UI: run for --duration, then print the report")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="wall-clock seconds to run (the city lives duration x speed simulated "
            "seconds); headless default 60, otherwise until Ctrl-C",
        ),
    ] = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="also write the report here (JSON)")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="simulated local time to start at, HH:MM (e.g. 18:30); default now"),
    ] = None,
    orders_per_minute: Annotated[
        float, typer.Option(min=0.0, help="city-wide base order rate per simulated minute")
    ] = 1.5,
    riders_per_store: Annotated[int, typer.Option(min=0, help="simulated riders on shift")] = 3,
    pickers_per_store: Annotated[int, typer.Option(min=0, help="simulated pickers")] = 2,
    payment_failure_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of payments the provider declines")
    ] = 0.03,
    seed: Annotated[int, typer.Option(help="random seed of the simulated people")] = 1,
) -> None:
    """The main job: the API on the seeded city with simulated customers, pickers and
    riders living in it, all on one sped-up clock; the report at the end."""
    from qc.sim import SimConfig, run_demo
    from qc.sim.demo import demo_logins, open_control_tower

    os.environ["QC_CLOCK_SPEED"] = str(speed)
    get_settings.cache_clear()
    db_url, _ = _prepare_stack(get_settings(), seed_demo=True)
    _print_logins(demo_logins())
    if not headless:
        console.print(
            f"apps: [bold]qc picker --store BLR-KOR --server http://{host}:{port}[/]   "
            f"[bold]qc rider --rider rider.001 --server http://{host}:{port}[/]"
        )
    config = SimConfig(
        orders_per_minute=orders_per_minute,
        riders_per_store=riders_per_store,
        pickers_per_store=pickers_per_store,
        seed=seed,
    )
    try:
        run_demo(
            database_url=db_url,
            host=host,
            port=port,
            speed=speed,
            duration_s=duration if duration is not None else (60.0 if headless else None),
            headless=headless,
            json_path=json_out,
            start_at=start,
            payment_failure_rate=payment_failure_rate,
            config=config,
            foreground=None if headless else open_control_tower,
        )
    except (RuntimeError, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None


app.command()(simulate)  # the deterministic simulated day (qc/des, issue 16)


@app.command()
def picker(
    server: Annotated[str, typer.Option(help="API base URL")] = "http://127.0.0.1:8000",
    store: Annotated[str | None, typer.Option(help="dark store, e.g. BLR-KOR")] = None,
    login: Annotated[str | None, typer.Option("--picker", help="e.g. picker.kor.1")] = None,
    camera: Annotated[
        str | None, typer.Option(help="also scan with a camera: device index or video")
    ] = None,
    outbox: Annotated[str | None, typer.Option(help="journal of unsent scans")] = None,
) -> None:
    """The picker terminal (picker_app) against a server."""
    from picker_app.__main__ import main

    argv = ["--server", server]
    for flag, value in (("--store", store), ("--picker", login), ("--camera", camera)):
        if value:
            argv += [flag, value]
    if outbox:
        argv += ["--outbox", outbox]
    raise typer.Exit(code=main(argv))


@app.command()
def rider(
    server: Annotated[str, typer.Option(help="API base URL")] = "http://127.0.0.1:8000",
    login: Annotated[str | None, typer.Option("--rider", help="e.g. rider.001")] = None,
    gps: Annotated[
        str | None, typer.Option(help="gpsd://, nmea://, gpx:// or sim://?from=..&to=..")
    ] = None,
    buffer_dir: Annotated[str | None, typer.Option(help="offline fix buffer folder")] = None,
    push_every: Annotated[float, typer.Option(help="seconds between position pushes")] = 5.0,
) -> None:
    """The rider handheld (rider_app) against a server."""
    from rider_app.__main__ import main

    argv = ["--server", server, "--push-every", str(push_every)]
    for flag, value in (("--rider", login), ("--gps", gps), ("--buffer-dir", buffer_dir)):
        if value:
            argv += [flag, value]
    raise typer.Exit(code=main(argv))


@app.command("control-tower")
def control_tower(
    server: Annotated[str, typer.Option(help="API base URL")] = "http://127.0.0.1:8000",
    city: Annotated[str | None, typer.Option(help="city to watch (default: the manager's)")] = None,
    login: Annotated[str | None, typer.Option(help="manager login, e.g. manager.blr")] = None,
    tz: Annotated[
        str, typer.Option(help="times in: city (its zone), local, or a zone name like UTC")
    ] = "city",
) -> None:
    """The city manager's control tower (control_tower) against a server."""
    from control_tower.__main__ import main

    argv = ["--server", server, "--tz", tz]
    for flag, value in (("--city", city), ("--login", login)):
        if value:
            argv += [flag, value]
    raise typer.Exit(code=main(argv))


def _server_now(server: str) -> datetime | None:
    """A running server's clock (a demo's runs faster than the wall), or None if none answers."""
    import httpx

    from shared.schemas.ops import ServerClockPublic

    try:
        r = httpx.get(server.rstrip("/") + "/v1/ops/clock", timeout=3)
        return ServerClockPublic.model_validate(r.json()).now if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


@app.command()
def token(
    login: Annotated[str, typer.Argument(help="a staff login, e.g. manager.blr")],
    server: Annotated[
        str, typer.Option(help="the running server whose clock dates the token")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Print a bearer token for a staff user (operator tool: reads the database directly).
    The token is dated by the running server's clock (a demo's runs faster than the wall);
    with no server answering, by this machine's clock and the settings' speed."""
    import psycopg

    from server.identity.models import User
    from server.identity.service import issue_token
    from server.kit.clock import Clock
    from shared.enums import Role

    settings = get_settings()
    url = database(settings)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT id, role FROM users WHERE login = %s AND is_active", (login,)
        ).fetchone()
    if row is None:
        raise fail(f"no active user {login!r}")
    if row[1] == Role.CUSTOMER:
        raise fail("tokens from the CLI are for staff; customers log in through the API")
    now = _server_now(server)
    if now is None:
        console.print(f"[yellow]no server at {server}: the token is dated by this machine[/]")
        now = Clock(speed=settings.clock_speed, anchor=settings.clock_anchor).now()
    user = User(id=row[0], login=login, name=login, role=Role(row[1]), secret_hash="")
    tok, _ = issue_token(user, key=settings.secret_key_value(), now=now, ttl_s=settings.token_ttl_s)
    sys.stdout.write(tok + "\n")


app.add_typer(forecast_app, name="forecast")
app.add_typer(replenish_app, name="replenish")


@app.command()
def balance(
    replicas: Annotated[int, typer.Option(min=1, help="API replicas")] = 3,
    port: Annotated[int, typer.Option(help="the balancer's port")] = 8080,
    server: Annotated[serving.Server, typer.Option(help="the replicas' server")] = "granian",
) -> None:
    """N API replicas behind HAProxy (health checks on /healthz) on one stack, until Ctrl+C."""
    import contextlib
    import signal as signals

    from qc.balance import balanced

    settings = get_settings()
    _prepare_stack(settings, seed_demo=False)
    env = {k: v for k, v in os.environ.items() if k.startswith("QC_")}
    with balanced(env, replicas=replicas, port=port, server=server) as lb:
        console.print(
            f"HAProxy on {lb.url} -> "
            + ", ".join(f"{r.name} {r.url}" for r in lb.replicas)
            + "  (Ctrl+C stops all)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            signals.pause()


app.add_typer(bench_app, name="bench")

if __name__ == "__main__":
    app()
