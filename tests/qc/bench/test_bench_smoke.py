"""The benchmarks run end to end at a tiny size and report figures (not timed here)."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from qc.bench.catalog import run as run_catalog
from qc.bench.checkout import run as run_checkout
from qc.bench.cli import bench_app
from qc.bench.reserve import run as run_reserve
from qc.bench.room import run as run_room
from qc.bench.stack import BenchDatabaseInUse, bench_database_url, bench_stack
from server.kit import db
from server.kit.config import get_settings
from tests.conftest import TEST_SECRET


async def test_a_bench_refuses_a_database_another_client_is_using(settings, clean) -> None:
    """Servers left running by a killed benchmark would change the books the next run
    compares: a bench refuses the database while another client is connected, naming it."""
    url = bench_database_url(settings)
    db.ensure_database(url)
    with psycopg.connect(url, application_name="a left-over bench server"):
        with pytest.raises(BenchDatabaseInUse, match="a left-over bench server"):
            async with bench_stack(settings, skus=10, alone_wait_s=0.5):
                pass


@pytest.mark.slow
def test_qc_bench_says_in_one_line_that_its_database_is_in_use(
    settings, clean, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's refusal is one line naming the other client and exit code 2, not a
    traceback (after the bench's wait for a just-stopped server's backends)."""
    for name, value in {
        "QC_HOME": str(settings.home),
        "QC_DATABASE_URL": settings.database_url,
        "QC_REDIS_URL": settings.redis_url,
        "QC_SECRET_KEY": TEST_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    url = bench_database_url(settings)
    db.ensure_database(url)
    try:
        with psycopg.connect(url, application_name="a left-over bench server"):
            result = CliRunner().invoke(bench_app, ["reserve", "--ops", "100", "--repeats", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "a left-over bench server" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
async def test_reserve_benchmark_reports_every_scenario(settings, clean) -> None:
    figures = await run_reserve(settings, ops=100, concurrency=8, repeats=1)
    for spread in ("1 SKU", "5,000 SKUs"):
        names = [r["name"] for r in figures["results"][spread]]
        assert names == [
            "engine end to end (Redis + journal -> PostgreSQL)",
            "engine end to end, the writer in a process of its own",
            "engine, Redis side only",
            "trivial Lua (limit)",
            "PostgreSQL row lock",
        ]
        assert all(r["per_second"] > 0 and r["errors"] == 0 for r in figures["results"][spread])
    assert figures["conditions"]["cores"] >= 1


@pytest.mark.slow
async def test_http_benchmarks_complete_orders_and_reads(settings, clean) -> None:
    catalog = await run_catalog(settings, duration=1, connections=4, repeats=1, workers=(1,))
    rows = catalog["results"]["granian, 1 worker"]  # what qc serve runs
    assert [r["name"] for r in rows] == [
        "bare ASGI (limit)",
        "bare FastAPI route",
        "product detail",
        "category page",
        "product list (40, live stock)",
        "search",
        "search (8 connections)",
    ]
    assert all(r["ops"] > 0 and r["errors"] == 0 and "wrk" in r["cpu"] for r in rows)
    assert len(catalog["memory_mib"]["granian, 1 worker"]) == 1
    checkout = await run_checkout(settings, concurrency=2, duration=2, warmup=1, workers=(1,))
    (result,) = checkout["results"]["granian, 1 worker"]  # what qc serve runs
    assert result["orders_per_s"] > 0 and result["failed_steps"] == 0 and result["errors"] == 0
    assert checkout["conditions"]["books_after"] == "agree (no drift)"
    assert checkout["conditions"]["warm_up"].startswith("1 s of the same flow")


@pytest.mark.slow
async def test_dispatch_benchmark_reports_matching_and_ingest(settings, clean) -> None:
    from qc.bench.dispatch import run as run_dispatch

    figures = await run_dispatch(
        settings, orders=20, riders=50, repeats=1, fixes=40, concurrency=4, tracked_riders=5
    )
    assert [r["name"] for r in figures["assignment"]] == [
        "match 20 orders x 50 riders (one store)",
        "same, Hungarian on the full matrix (reference)",
        "match 20 orders of 12 stores x 50 riders",
        "batch 20 orders of one store",
    ]
    # the ingest from one process, then from two at once (as two API workers)
    one, two = figures["ingest"]
    assert one["name"].endswith("1 process") and two["name"].endswith("2 processes")
    for run in (one, two):
        assert run["ops"] == 40 and run["errors"] == 0 and run["cpu_us_per_fix"] > 0


@pytest.mark.slow
async def test_ops_benchmark_reports_the_feed_figures(settings, clean) -> None:
    from qc.bench.ops import run as run_ops

    results, cond = await run_ops(settings, active=40, delivered=100, repeats=3)
    assert results[0].name == "SELECT 1 round trip (floor)"
    assert all(r.errors == 0 and r.p50_ms > 0 for r in results)
    # the feed sees exactly the orders the benchmark put in flight and delivered
    assert cond["active_orders"] == 40 and cond["riders_on_duty"] == 120
    delivered_today = cond["delivered_today"]
    assert isinstance(delivered_today, int) and 0 < delivered_today <= 100


def test_bench_all_flattens_every_shape_of_figures() -> None:
    from qc.bench.all import rows_of

    row = {"name": "x", "ops": 10, "errors": 1, "seconds": 1.0, "p50_ms": 2.0, "p99_ms": 3.0}
    shapes = {
        "results": {"1 worker": [row], "2 workers": [row | {"name": "y"}]},
        "ingest": row | {"name": "fixes", "per_second": 10.0},
        "conditions": {"cores": 2},
    }
    rows = list(rows_of("b", shapes))
    assert [r.scenario for r in rows] == ["1 worker / x", "2 workers / y", "ingest / fixes"]
    assert rows[2].per_second == 10.0 and rows[0].errors == 1


@pytest.mark.slow
async def test_bench_all_runs_the_chosen_benchmarks_into_one_table(
    settings, clean, tmp_path
) -> None:
    import json

    from qc.bench.all import run_all

    out = tmp_path / "all.json"
    rows = await run_all(settings, quick=True, only=["ops"], json_path=str(out))
    assert {r.bench for r in rows} == {"ops"} and len(rows) == 4
    saved = json.loads(out.read_text())
    assert saved["conditions"]["cores"] and set(saved["benchmarks"]) == {"ops"}


@pytest.mark.slow
async def test_room_benchmark_reports_each_part_against_the_bare_route(settings, clean) -> None:
    figures = await run_room(settings, joins=30, sockets=5, connections=4, idle_s=0.2)
    rows = figures["results"]
    assert list(rows) == [
        "bare FastAPI route (a join's shape)",
        "join, auth cold (the customer's first request)",
        "join, auth warm (cached before)",
        "socket: handshake and first message",
        "socket held open",
    ]
    for name in list(rows)[:4]:
        # CPU comes from /proc in 10 ms ticks: a tiny run may read 0 of it
        assert rows[name]["count"] in (30, 5) and rows[name]["per_second"] > 0
        assert rows[name]["server_cpu_us_each"] >= 0
    assert rows["socket held open"]["count"] == 5
