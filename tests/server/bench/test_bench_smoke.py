"""The benchmarks run end to end at a tiny size and report figures (not timed here)."""

from __future__ import annotations

import pytest

from server.bench.http import run_catalog, run_checkout
from server.bench.reserve import run as run_reserve


@pytest.mark.slow
async def test_reserve_benchmark_reports_every_scenario(settings, clean) -> None:
    figures = await run_reserve(settings, ops=100, concurrency=8, repeats=1)
    for spread in ("1 SKU", "5,000 SKUs"):
        names = [r["name"] for r in figures["results"][spread]]
        assert names == [
            "engine (Redis + PostgreSQL)",
            "engine, Redis side only",
            "trivial Lua (limit)",
            "PostgreSQL row lock",
        ]
        assert all(r["per_second"] > 0 and r["errors"] == 0 for r in figures["results"][spread])
    assert figures["conditions"]["cores"] >= 1


@pytest.mark.slow
async def test_http_benchmarks_complete_orders_and_reads(settings, clean) -> None:
    catalog = await run_catalog(settings, ops=100, concurrency=4, repeats=1, workers=(1,))
    assert [r["name"] for r in catalog["results"]["1 worker"]] == [
        "bare ASGI JSON (limit)",
        "product list (40, live stock)",
        "product detail",
    ]
    checkout = await run_checkout(settings, orders=10, concurrency=2, workers=(1,))
    result = checkout["results"]["1 worker"][0]
    assert result["ops"] == 10 and result["errors"] == 0 and result["per_second"] > 0


@pytest.mark.slow
async def test_dispatch_benchmark_reports_matching_and_ingest(settings, clean) -> None:
    from server.bench.dispatch import run as run_dispatch

    figures = await run_dispatch(
        settings, orders=20, riders=50, repeats=1, fixes=40, concurrency=4, tracked_riders=5
    )
    assert [r["name"] for r in figures["assignment"]] == [
        "match 20 orders x 50 riders",
        "batch 20 orders of one store",
    ]
    assert figures["ingest"]["ops"] == 40 and figures["ingest"]["errors"] == 0
