"""``qc demo --headless`` as a newcomer runs it: a fresh home, the embedded stack, the
seeded city, the API server and the simulation, the report on stdout and in JSON."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

QC = [sys.executable, "-m", "qc.cli"]

# run in a fresh process on the same home once the demo has ended: PostgreSQL starts again
VERIFY = """
import json, sys
import psycopg
from server.kit.config import Settings
from server.kit.db import resolve_database_url

start = sys.argv[1]
with psycopg.connect(resolve_database_url(Settings())) as conn:
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'DELIVERED'), "
        "count(*) FILTER (WHERE status = 'CANCELLED') FROM orders WHERE placed_at >= %s",
        (start,),
    ).fetchone()
    paths = {}
    for order_id, to_status in conn.execute(
        "SELECT e.order_id, e.to_status FROM order_events e JOIN orders o "
        "ON o.store_id = e.store_id AND o.order_id = e.order_id "
        "WHERE o.placed_at >= %s AND o.status = 'DELIVERED' ORDER BY e.order_id, e.at, e.event_id",
        (start,),
    ):
        paths.setdefault(str(order_id), []).append(to_status)
    negative = conn.execute(
        "SELECT count(*) FROM store_inventory "
        "WHERE least(available_qty, reserved_qty, damaged_qty, in_transit_qty) < 0"
    ).fetchone()[0]
print(json.dumps({"placed": row[0], "delivered": row[1], "cancelled": row[2],
                  "paths": list(paths.values()), "negative": negative}))
"""

HAPPY_PATH = [
    "PLACED",
    "CONFIRMED",
    "PICKING",
    "PACKED",
    "DISPATCHED",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")}
    return {**env, "QC_HOME": str(home), "QC_LOG_JSON": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_or_dump_stacks(
    args: list[str], *, env: dict[str, str], timeout: float, port: int
) -> subprocess.CompletedProcess[str]:
    """Run; past ``timeout`` the demo dumps every thread's stack (faulthandler on SIGABRT)
    into the failure, and its API server (its own session) is stopped too."""
    proc = subprocess.Popen(
        args,
        env={**env, "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        stdout, stderr = proc.communicate(timeout=60)
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError, ValueError):
                parts = cmdline.read_bytes().split(b"\0")
                if b"granian" in parts[2:3] and str(port).encode() in parts:
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
        pytest.fail(f"the demo ran past {timeout} s:\n{stdout[-2000:]}\n{stderr[-8000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


@pytest.mark.alone
@pytest.mark.slow
def test_headless_demo_delivers_orders_and_reports_what_the_database_holds(
    qc_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    port = _free_port()
    demo = _run_or_dump_stacks(
        [
            *QC,
            "demo",
            "--headless",
            "--duration",
            "90",  # 30 simulated minutes: an evening order takes ~12 to reach the door
            "--speed",
            "20",
            "--json",
            str(out),
            "--port",
            str(port),
            "--start",
            "18:00",  # the evening peak, whatever time the suite runs at
        ],
        env=_env(qc_home),
        timeout=300,
        port=port,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "oversells" in demo.stdout and "order-to-door p50" in demo.stdout
    assert "picker.kor.1" in demo.stdout  # the demo logins left to people
    report = json.loads(out.read_text())
    assert report["speed"] == 20
    # the report covers the day from the start the banner named (setup time included)
    began = datetime.fromisoformat(report["started_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    assert f"the day starts {began:%a} 18:00 (Asia/Kolkata)" in demo.stderr
    assert report["simulated_s"] >= 90 * 20
    assert report["simulated_s"] == pytest.approx(report["wall_s"] * 20)
    assert report["orders_delivered"] > 0
    # the 10-minute promise, kept by turning away what cannot make it (and saying how many)
    assert "customers refused (no store in time)" in demo.stdout
    assert report["refused_share"] is not None
    # (~67 % of ~20 orders on a cold 20x evening at load ~5-7; ~22-27 % before the 10-minute
    # promise). A wall-clock run of 20 orders is noisy: the bar only catches the promise
    # gone; the deterministic simulation judges the share (tests/qc/des)
    assert report["delivered_within_10_min"] >= 0.35, report
    assert report["oversells"] == 0
    assert report["ledger_mismatches"] == 0

    checked = subprocess.run(
        [sys.executable, "-c", VERIFY, report["started_at"]],
        env=_env(qc_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    truth = json.loads(checked.stdout.strip().splitlines()[-1])
    assert report["orders_placed"] == truth["placed"]
    assert report["orders_delivered"] == truth["delivered"]
    assert report["orders_cancelled"] == truth["cancelled"]
    assert truth["negative"] == 0
    assert truth["paths"], "no delivered order"
    for path in truth["paths"]:
        assert [s for s in path if s != "PARTIALLY_FULFILLED"] == HAPPY_PATH


@pytest.mark.slow
def test_qc_rider_hands_its_options_to_the_rider_app() -> None:
    """``qc rider`` is the rider app: its own option checks answer (no UI starts)."""
    out = subprocess.run(
        [*QC, "rider", "--server", "http://127.0.0.1:9", "--gps", "bogus://x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "python -m rider_app" in out.stderr and "unknown GPS source" in out.stderr
    helped = subprocess.run([*QC, "picker", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--store" in helped.stdout


@pytest.mark.slow
def test_qc_control_tower_is_the_control_tower_app() -> None:
    helped = subprocess.run(
        [*QC, "control-tower", "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "--login" in helped.stdout and "--city" in helped.stdout
