"""``qc bench flash`` end to end at a tiny size: real uvicorn workers, real sockets; the
proof it reports must hold (figures are not timed here)."""

from __future__ import annotations

import os

import pytest

from qc.bench.flash import run
from qc.bench.flash_crowd import lanes_of


@pytest.mark.slow
@pytest.mark.parametrize("warm_auth", [False, True], ids=["cold-auth", "warm-auth"])
async def test_the_flash_benchmark_sells_exactly_the_units(settings, clean, warm_auth) -> None:
    figures = await run(
        settings,
        users=60,
        units=12,
        workers=1,
        slots=4,
        slot_seconds=5,
        sockets=20,
        arrival_s=1.0,
        connections=16,
        failure_rate=0.1,
        abandon_rate=0.0,
        regular_seconds=1.0,
        poll_cap_s=2.0,  # pages far back would wait 2 minutes to hear the line closed
        generators=2,  # the crowd from two processes, merged
        warm_auth=warm_auth,  # the crowd's auth states cached before the sale, or not
        quiet=5,  # a quiet client's customers join too, one at a time, from their own process
        quiet_s=1.0,
    )
    proof, crowd = figures["proof"], figures["crowd"]
    assert proof["sold"] == proof["units"] == proof["confirmed_orders_at_sale_price"] == 12
    assert proof["oversold"] == 0 and proof["customers_over_limit"] == 0
    assert proof["units_that_left"] == 12 and proof["ledger_matches_stock"]
    assert proof["sold_admission_inversions"] == 0 and crowd["admission_inversions"] == 0
    assert crowd["joins"] == 60 and crowd["socket_positions_rose"] == 0
    assert crowd["joins_per_s"] > 0  # answered from the first join to the last
    # the reference: the same 60 arrivals to the bare route, every one answered
    assert crowd["bare_joins"] == 60 and crowd["bare_refused"] == 0
    assert crowd["bare_join_p99_ms"] >= crowd["bare_join_p50_ms"] > 0
    assert crowd["outcomes"]["bought"] == 12
    assert sum(crowd["outcomes"].values()) == 60  # every customer ended somewhere
    # the regular orders are an open loop: 10 a second for the baseline's second
    assert figures["regular"]["without_sale"]["started"] == 10
    assert figures["regular"]["without_sale"]["orders"] > 0
    assert figures["conditions"]["generator_cpu_pct_per_process"] > 0
    # and while the crowd joined: the burst the whole run's average spreads thin
    assert figures["conditions"]["generator_cpu_pct_per_process_while_joining"] > 0
    # the line's server's share of a core meanwhile (read off /proc in 10 ms ticks)
    assert 0 <= crowd["line_cpu_pct_while_joining"] <= 100 * (os.cpu_count() or 1)
    # and how late its event loop ran a timer meanwhile, off its /metrics (a bucket's bound)
    assert crowd["line_loop_lag_p99_ms_while_joining"] in (
        1.0,
        2.5,
        5.0,
        10.0,
        25.0,
        50.0,
        100.0,
        250.0,
        500.0,
        1000.0,
    )
    # from arrival counts the client's own wait as well: never less than the request alone
    assert crowd["join_from_arrival_p99_ms"] >= crowd["join_p50_ms"] > 0
    # the quiet client's customers are in line beside the crowd, not of it
    assert (
        crowd["quiet_joins"] == 5 and crowd["quiet_join_p99_ms"] >= crowd["quiet_join_p50_ms"] > 0
    )
    assert crowd["api_cpu_ms_per_customer"] > 0 and crowd["generator_loop_lag_p99_ms"] >= 0
    # the line's server's memory: a live process's, never below where it started
    assert crowd["line_rss_peak_mib"] >= crowd["line_rss_before_mib"] > 20
    assert crowd["line_rss_kib_per_socket"] is not None
    # the line was served by the waiting room's own server (its CPU a part of the API's),
    # and its admitted customers bought at the API
    assert figures["conditions"]["waiting_room"].startswith("its own server")
    warm = "warm (60 cached before the sale)"
    assert figures["conditions"]["auth_state"] == (warm if warm_auth else "cold (joins load it)")
    room_cpu = crowd["waiting_room_cpu_ms_per_customer"]
    assert 0 < room_cpu < crowd["api_cpu_ms_per_customer"]
    # the regular orders beside the crowd are taken out at their baseline cost
    assert crowd["api_cpu_ms_per_regular_order"] > 0
    assert 0 <= crowd["api_cpu_ms_per_customer_without_regular"] <= crowd["api_cpu_ms_per_customer"]


def test_a_share_spreads_its_customers_over_all_its_clients() -> None:
    """Two processes: one plays the even customers, the other the odd ones; each still
    uses every one of its clients of a kind."""
    lanes = {"join": ["j0", "j1"], "poll": ["p0"]}
    share = list(range(20_000))[0::2]  # Arrival.i of the first process's customers
    used = [lanes_of(lanes, place) for place, _ in enumerate(share)]
    assert {u["join"] for u in used} == {"j0", "j1"} and {u["poll"] for u in used} == {"p0"}
    assert sum(u["join"] == "j0" for u in used) == len(share) // 2
