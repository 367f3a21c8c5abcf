"""The proof and the report of ``qc bench flash``: what PostgreSQL says happened (units
sold, oversold, limits, the SKU's books, admission order) and the tables printed at the end.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from qc.bench.stack import one_row


def books(database_url: str, store: str, sku: str) -> tuple[tuple[int, ...], int]:
    """The SKU's stock row and the sum of its ledger deltas."""
    with psycopg.connect(database_url) as conn:
        row = one_row(
            conn,
            "SELECT available_qty, reserved_qty, damaged_qty, in_transit_qty FROM store_inventory "
            "WHERE store_id = %s AND sku_id = %s",
            (store, sku),
        )
        ledger = one_row(
            conn,
            "SELECT coalesce(sum(d_available + d_reserved + d_damaged + d_in_transit), 0) "
            "FROM stock_ledger WHERE store_id = %s AND sku_id = %s",
            (store, sku),
        )[0]
    return tuple(row), int(ledger)


def verify(
    database_url: str, sale_id: str, sku: str, store: str, before: tuple[tuple[int, ...], int]
) -> dict[str, Any]:
    """What PostgreSQL says happened: the proof."""
    with psycopg.connect(database_url) as conn:
        tokens: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM inventory_tokens WHERE sale_id = %s GROUP BY status",
                (sale_id,),
            ).fetchall()
        )
        units, limit, price = one_row(
            conn,
            "SELECT (SELECT sum(units) FROM flash_sale_stores WHERE sale_id = s.sale_id), "
            "per_customer_limit, sale_price_paise FROM flash_sales s WHERE sale_id = %s",
            (sale_id,),
        )
        orders = one_row(
            conn,
            "SELECT count(*), count(DISTINCT o.user_id) FROM orders o "
            "JOIN order_items i ON i.store_id = o.store_id AND i.order_id = o.order_id "
            "JOIN inventory_tokens t ON t.order_id = o.order_id "
            "WHERE t.sale_id = %s AND o.status = 'CONFIRMED' AND i.unit_price_paise = %s",
            (sale_id, price),
        )
        over_limit = one_row(
            conn,
            "SELECT count(*) FROM (SELECT claimed_by FROM inventory_tokens WHERE sale_id = %s "
            "AND status = 'SOLD' GROUP BY claimed_by HAVING count(*) > %s) x",
            (sale_id, limit),
        )[0]
        admitted = conn.execute(
            "SELECT ticket FROM inventory_tokens WHERE sale_id = %s AND status = 'SOLD' "
            "ORDER BY admit_no",
            (sale_id,),
        ).fetchall()
        negative = one_row(
            conn, "SELECT count(*) FROM store_inventory WHERE available_qty < 0 OR reserved_qty < 0"
        )[0]
    sold = int(tokens.get("SOLD", 0))
    tickets = [t for (t,) in admitted]
    after, ledger_after = books(database_url, store, sku)
    physical_before, physical_after = sum(before[0]), sum(after)
    return {
        "units": int(units),
        "sold": sold,
        "confirmed_orders_at_sale_price": int(orders[0]),
        "buyers": int(orders[1]),
        "oversold": max(0, sold - int(units)) + max(0, int(orders[0]) - int(units)) + int(negative),
        "customers_over_limit": int(over_limit),
        "tokens": {k.lower(): int(v) for k, v in tokens.items()},
        "sold_admission_inversions": sum(1 for a, b in itertools.pairwise(tickets) if a > b),
        "physical_before": physical_before,
        "physical_after": physical_after,
        "units_that_left": physical_before - physical_after,
        "reserved_after": int(after[1]),
        # every movement of the run is in the ledger: its deltas add up to the change
        "ledger_matches_stock": ledger_after - before[1] == physical_after - physical_before,
    }


def print_report(f: dict[str, Any]) -> None:
    console = Console()
    p, c, s = f["proof"], f["crowd"], f["sale"]
    arriving = f["conditions"]["users"] / f["conditions"]["arrival_s"]
    proof = Table(title="qc bench flash: what PostgreSQL says")
    proof.add_column("figure")
    proof.add_column("value", justify="right")
    for label, value in (
        ("units in the sale", f"{p['units']:,}"),
        ("units sold (tokens SOLD)", f"{p['sold']:,}"),
        ("CONFIRMED orders at the sale price", f"{p['confirmed_orders_at_sale_price']:,}"),
        ("oversold", str(p["oversold"])),
        ("customers over their limit", str(p["customers_over_limit"])),
        ("units that left the SKU's books", f"{p['units_that_left']:,}"),
        ("ledger deltas = change of physical stock", str(p["ledger_matches_stock"])),
        ("sold tokens out of join order", str(p["sold_admission_inversions"])),
        ("tokens at the end", json.dumps(p["tokens"])),
    ):
        proof.add_row(label, value)
    console.print(proof)
    crowd = Table(title="qc bench flash: the crowd, as the clients saw it")
    crowd.add_column("figure")
    crowd.add_column("value", justify="right")
    for label, value in (
        ("customers who joined", f"{c['joins']:,}"),
        ("join p50 / p99 ms", f"{c['join_p50_ms']:,.1f} / {c['join_p99_ms']:,.1f}"),
        (
            f"join p50 / p99 ms at a quiet client ({c['quiet_joins']:,} joins)",
            f"{c['quiet_join_p50_ms']:,.1f} / {c['quiet_join_p99_ms']:,.1f}",
        ),
        (
            f"reference: the same arrivals to a bare FastAPI route, p50 / p99 ms"
            f" ({c['bare_joins']:,} answered, {c['bare_joins_per_s'] or 0:,.0f} a second)",
            f"{c['bare_join_p50_ms']:,.1f} / {c['bare_join_p99_ms']:,.1f}",
        ),
        (
            "join p99 / the reference's p99",
            f"{c['join_p99_ms'] / max(c['bare_join_p99_ms'], 0.1):,.1f}x",
        ),
        (
            "joins answered a second, first to last (arrivals a second)",
            f"{c['joins_per_s'] or 0:,.1f} ({arriving:,.0f})",
        ),
        (
            "join from arrival p50 / p99 ms (with the client's own wait)",
            f"{c['join_from_arrival_p50_ms']:,.1f} / {c['join_from_arrival_p99_ms']:,.1f}",
        ),
        (
            "line's server's CPU while the crowd joined, % of a core",
            f"{c['line_cpu_pct_while_joining'] or 0:,.1f}",
        ),
        (
            "line's server's event-loop lag p99 while the crowd joined, ms (within)",
            "-"
            if c["line_loop_lag_p99_ms_while_joining"] is None
            else f"{c['line_loop_lag_p99_ms_while_joining']:,.1f}",
        ),
        (
            "generator CPU while the crowd joined, % of a core a process",
            f"{f['conditions']['generator_cpu_pct_per_process_while_joining'] or 0:,.1f}",
        ),
        (
            "generator loop lag p50 / p99 ms",
            f"{c['generator_loop_lag_p50_ms']:,.1f} / {c['generator_loop_lag_p99_ms']:,.1f}",
        ),
        ("API CPU per customer of the crowd ms", f"{c['api_cpu_ms_per_customer']:,.2f}"),
        (
            "  without the regular orders beside it ms",
            f"{c['api_cpu_ms_per_customer_without_regular']:,.2f}"
            f" ({c['api_cpu_s_regular_orders_beside']:,.1f} s for"
            f" {f['regular']['during_sale']['orders']:,} orders at"
            f" {c['api_cpu_ms_per_regular_order']:,.1f} ms)",
        ),
        ("flash checkouts", f"{c['checkouts']:,}"),
        ("checkout p50 / p99 ms", f"{c['checkout_p50_ms']:,.1f} / {c['checkout_p99_ms']:,.1f}"),
        ("admitted (slots given)", f"{c['admitted']:,}"),
        (
            "admission order vs join order",
            f"{c['admission_inversions']} inversions in {c['admissions_seen']:,}",
        ),
        (
            "wait for a slot p50 / p99 s",
            f"{c['admission_wait_p50_s']} / {c['admission_wait_p99_s']}",
        ),
        ("sockets / messages", f"{c['sockets']:,} / {c['socket_messages']:,}"),
        ("socket positions that rose", str(c["socket_positions_rose"])),
        (
            "line's server resident MiB before / peak (KiB per socket)",
            f"{c['line_rss_before_mib']:,.0f} / {c['line_rss_peak_mib']:,.0f}"
            f" ({c['line_rss_kib_per_socket']})",
        ),
        ("polls", f"{c['polls']:,}"),
        ("refused (then retried)", json.dumps(c["refused"]) if c["refused"] else "none"),
        ("sale creation (tokens pre-generated)", f"{s['create_s']} s"),
        ("sold out, seen by a client after", f"{s['sold_out_seen_after_s']} s"),
        ("whole crowd done after", f"{s['crowd_s']} s"),
    ):
        crowd.add_row(label, value)
    for outcome, n in sorted(c["outcomes"].items(), key=lambda kv: -kv[1]):
        crowd.add_row(f"  outcome: {outcome}", f"{n:,}")
    console.print(crowd)
    regular = Table(title="qc bench flash: regular orders (cart, 2 lines, checkout)")
    for column in (
        "scenario",
        "orders",
        "orders/s",
        "checkout p50 ms",
        "checkout p99 ms",
        "errors",
    ):
        regular.add_column(column, justify="left" if column == "scenario" else "right")
    base = f["regular"]["without_sale"]
    for name, r in (("without the sale", base), ("during the sale", f["regular"]["during_sale"])):
        regular.add_row(
            name,
            str(r["orders"]),
            f"{r['orders_per_s']}",
            f"{r['checkout_p50_ms']:.1f}",
            f"{r['checkout_p99_ms']:.1f}",
            json.dumps(r["errors"]) if r["errors"] else "0",
        )
    console.print(regular)
    cond = {k: v for k, v in f["conditions"].items() if k != "pid"}
    console.print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
    with contextlib.suppress(Exception):
        ratio = f["regular"]["during_sale"]["checkout_p50_ms"] / base["checkout_p50_ms"]
        console.print(f"regular checkout p50 during the sale: {ratio:.2f}x the baseline")
