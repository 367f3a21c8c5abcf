"""``qc demo``: the API server on the prepared stack plus the living city against it.

The server runs as ``qc serve`` runs it (granian, ``qc.serving``) in a subprocess (its own core: the simulation is busy too) on the
same clock as the simulation: both read ``QC_CLOCK_SPEED`` and ``QC_CLOCK_ANCHOR``. The
anchor is chosen so the simulated day starts when ``qc.sim.start`` says (the asked or a
lively open hour, never before anything already recorded, so a second demo continues the
first one's world); the banner names that start and the report's window opens at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
from rich.console import Console

from qc import serving
from qc.sim.config import SimConfig
from qc.sim.report import Report
from qc.sim.runner import Simulation
from qc.sim.start import anchor_for, parse_start, plan_start, store_hours
from server.kit.clock import Clock
from server.kit.config import get_settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role

DEMO_PROMISE_S = 600  # the door within 10 minutes of placing, or the order is refused

_LATEST = """
    SELECT greatest(
      (SELECT max(placed_at) FROM orders), (SELECT max(last_fix_at) FROM riders),
      (SELECT max(created_at) FROM stock_ledger), (SELECT max(updated_at) FROM trips),
      (SELECT max(started_at) FROM rider_shifts), (SELECT max(updated_at) FROM carts))"""


@dataclass
class DemoSession:
    """What a foreground UI gets while the city runs behind it."""

    base_url: str
    clock: Clock
    simulation: Simulation
    logins: dict[str, str]

    def stop(self) -> None:
        self.simulation.request_stop()


Foreground = Callable[[DemoSession], object]


def demo_logins(store_ids: list[str] | None = None) -> dict[str, str]:
    """The logins the simulation leaves to people (role -> "login / secret")."""
    stores = len(store_ids) if store_ids else 12
    return {
        "manager": f"manager.blr / {DEMO_SECRETS[Role.MANAGER]}",
        "picker (yours)": f"picker.kor.1 / {DEMO_SECRETS[Role.PICKER]}  "
        "(picker.<store>.1 at every store)",
        "rider (yours)": f"rider.001 / {DEMO_SECRETS[Role.RIDER]}  "
        f"(rider.001 to rider.{stores:03d})",
        "customer": f"customer.001 / {DEMO_SECRETS[Role.CUSTOMER]}",
    }


def latest_recorded(database_url: str) -> tuple[float | None, int]:
    """The latest simulated moment anything in the database happened at, and how many
    orders an earlier run left unfinished."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(_LATEST).fetchone()
        (unfinished,) = conn.execute(
            "SELECT count(*) FROM orders WHERE status NOT IN ('DELIVERED', 'CANCELLED')"
        ).fetchone() or (0,)
    return (row[0].timestamp() if row and row[0] is not None else None), int(unfinished)


def _loop_intervals(speed: float) -> dict[str, float]:
    return {
        "QC_DISPATCH_INTERVAL_S": max(0.2, min(1.0, 20.0 / speed)),
        "QC_SWEEP_INTERVAL_S": max(0.25, min(1.0, 20.0 / speed)),
        "QC_RELAY_INTERVAL_S": max(0.05, min(0.2, 4.0 / speed)),
    }


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"the API server exited (code {proc.returncode}):\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API server at {url} did not become healthy")


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def _run_until_stopped(
    simulation: Simulation, duration_s: float | None, since: datetime
) -> Report:
    """Run; Ctrl-C stops the city and still prints the report (a second one quits)."""
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt
        simulation.request_stop()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        await simulation.setup()
        return await simulation.run(duration_s, since=since)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


def run_demo(
    *,
    database_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    speed: float = 10.0,
    duration_s: float | None = None,
    headless: bool = False,
    json_path: str | None = None,
    start_at: str | None = None,
    payment_failure_rate: float = 0.03,
    promise_s: float = DEMO_PROMISE_S,
    config: SimConfig | None = None,
    foreground: Foreground | None = None,
    console: Console | None = None,
) -> Report:
    """The demo: API server + simulation on one clock; returns (and prints) the report.

    ``duration_s`` is wall-clock seconds (the city lives ``duration_s * speed`` simulated
    seconds); None runs until Ctrl-C (or until ``foreground`` returns). ``foreground``, if
    given and not headless, is called in this thread with a ``DemoSession`` while the city
    runs in a background thread (e.g. the control tower app); the city stops when it
    returns. The caller has prepared the stack (``qc.cli._prepare_stack``).
    """
    console = console or Console(stderr=True)
    config = config or SimConfig()
    latest, unfinished = latest_recorded(database_url)
    planned = plan_start(
        start_at=parse_start(start_at),
        timezone=config.timezone,
        latest=latest,
        unfinished=unfinished,
        stores=store_hours(database_url),
    )
    if planned.note:
        console.print(planned.note)
    anchor, start = anchor_for(planned.at, speed=speed)
    os.environ["QC_CLOCK_SPEED"] = repr(float(speed))
    os.environ["QC_CLOCK_ANCHOR"] = repr(anchor)
    os.environ["QC_PAYMENT_FAILURE_RATE"] = repr(float(payment_failure_rate))
    os.environ.setdefault("QC_LOG_LEVEL", "WARNING")
    # the city keeps the 10-minute promise: serviceability reaches only as far as a new
    # order can be at the door in time (the rest are refused, counted in the report)
    os.environ.setdefault("QC_SERVICEABILITY_PROMISE_S", repr(int(promise_s)))
    # the server's loops run on real-time cadences: faster worlds need them more often, so
    # an offer or a status change takes about as long in simulated time at any speed
    for name, value in _loop_intervals(speed).items():
        os.environ.setdefault(name, repr(value))
    get_settings.cache_clear()
    clock = Clock(speed=speed, anchor=anchor)
    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "demo-server.log"
    base_url = f"http://{host}:{port}"
    local = datetime.fromtimestamp(start, ZoneInfo(config.timezone))
    day = f"the day starts {local:%a %H:%M} ({config.timezone})"
    console.print(
        f"[bold]qc demo[/]: the city at {speed:g}x, {day}; API on {base_url} "
        f"(server log: {log_path})"
    )
    with log_path.open("ab") as server_log:
        proc = subprocess.Popen(
            serving.command("granian", host=host, port=port),  # as qc serve runs it
            env=os.environ.copy(),
            stdout=server_log,
            stderr=server_log,
            start_new_session=True,  # Ctrl-C reaches the demo; the demo stops the server
        )
    try:
        _wait_healthy(base_url, proc, log_path)
        simulation = Simulation(base_url, clock=clock, database_url=database_url, config=config)
        since = datetime.fromtimestamp(start, UTC)  # the report's window opens with the day
        if foreground is not None and not headless:
            notes = {"demo day": day + (f"; {planned.note}" if planned.note else "")}
            report = run_with_foreground(
                simulation, foreground, duration_s, clock, since=since, notes=notes
            )
        else:
            if not headless:
                console.print("the city is running: Ctrl-C stops it and prints the report")
            report = asyncio.run(_run_until_stopped(simulation, duration_s, since))
    finally:
        _stop_server(proc)
    report.render(Console())
    if json_path:
        report.write_json(json_path)
        console.print(f"report written to {json_path}")
    return report


def run_with_foreground(
    simulation: Simulation,
    foreground: Foreground,
    duration_s: float | None,
    clock: Clock,
    *,
    since: datetime | None = None,
    notes: dict[str, str] | None = None,
) -> Report:
    """The city in a thread, ``foreground`` in this one; the report's window opens at
    ``since`` (the day's start the demo announced), else when the city starts."""
    result: list[Report] = []
    failure: list[BaseException] = []

    def city() -> None:
        async def main() -> None:
            await simulation.setup()
            ready.set()
            result.append(await simulation.run(duration_s, since=since))

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced in the calling thread
            failure.append(exc)
            ready.set()

    ready = threading.Event()
    thread = threading.Thread(target=city, name="qc-city", daemon=True)
    thread.start()
    ready.wait()
    try:
        if not failure:
            foreground(
                DemoSession(
                    simulation.base_url,
                    clock,
                    simulation,
                    demo_logins(list(simulation.world.stores)) | (notes or {}),
                )
            )
    finally:
        simulation.request_stop()
        thread.join()
    if failure:
        raise failure[0]
    return result[0]


def open_control_tower(session: DemoSession) -> None:
    """The demo's foreground: the control tower, logged in as the city manager, on the
    running city. Quitting it (``q``) stops the city and prints the report."""
    from control_tower.app import ControlTowerApp

    url = session.base_url
    ControlTowerApp(
        server_url=url,
        city="BLR",
        login="manager.blr",
        password=DEMO_SECRETS[Role.MANAGER],
        notes=session.logins  # the help screen (?) shows them: the console is hidden
        | {
            "picker app": f"qc picker --store BLR-KOR --server {url}",
            "rider app": f"qc rider --rider rider.001 --server {url}",
            "API token": f"qc token manager.blr --server {url}",
        },
    ).run()
