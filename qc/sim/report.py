"""The headless demo's report, computed from PostgreSQL (the source of truth).

The run's orders are those placed at or after the run's start on the simulated clock,
and those an earlier run left in flight that this one carried on (placed before, not done
by the start): riders deliver both, so both are counted. Times are simulated seconds. What only the simulation saw (a wrong scan refused, a stale
"in stock" in a category list) is listed apart, as the simulation's own counters.

Oversells: a (store, SKU) counts once if any of these holds at the end of the run:

* a stock bucket is negative (the schema's check constraint makes this impossible);
* units committed to paid orders during the run exceed what the store could have sold:
  the sellable units at the start (available + held) plus what arrived during the run
  (receipts, returns, positive count corrections);
* an item of a delivered order has fewer committed units behind it than were delivered.

The ledger is checked too: the stock at the start plus every ledger movement of the run
must equal the stock at the end (``ledger_mismatches``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from rich.console import Console
from rich.table import Table

Buckets = tuple[int, int, int, int]  # available, reserved, damaged, in transit
WARM_S = 15 * 60  # simulated seconds a cold city takes to learn its stores' ride pace


@dataclass(frozen=True)
class Snapshot:
    """Stock and the ledger's high-water mark when the run began."""

    at: datetime
    ledger_entry_id: int
    stock: dict[tuple[str, str], Buckets]


def take_snapshot(database_url: str, at: datetime) -> Snapshot:
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        high = conn.execute("SELECT coalesce(max(entry_id), 0) FROM stock_ledger").fetchone()
        rows = conn.execute(
            "SELECT store_id, sku_id, available_qty, reserved_qty, damaged_qty, in_transit_qty "
            "FROM store_inventory"
        ).fetchall()
    return Snapshot(
        at=at,
        ledger_entry_id=int(high[0]) if high else 0,
        stock={(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows},
    )


@dataclass
class Report:
    started_at: str
    ended_at: str
    simulated_s: float
    wall_s: float
    speed: float
    timezone: str = "UTC"  # of the city: the simulated times are shown in it
    orders_placed: int = 0
    orders_carried_over: int = 0  # placed in an earlier run, still in flight at the start
    orders_delivered: int = 0
    orders_cancelled: int = 0
    orders_in_flight: int = 0
    cancelled_by_reason: dict[str, int] = field(default_factory=dict)
    delivered_within_10_min: float | None = None  # share of delivered orders
    delivered_within_15_min: float | None = None
    order_to_door_p50_s: float | None = None
    order_to_door_p90_s: float | None = None
    # once warm: orders placed after the run's first ``WARM_S`` (the stores' ride pace is
    # learned from their first rides; until then serviceability promises at the planning pace)
    delivered_within_10_min_warm: float | None = None
    delivered_warm: int = 0
    # customers told no store reaches them in time (at store selection or at checkout),
    # as a share of the simulated customers' sessions
    refused_share: float | None = None
    # how late the simulated people woke from their waits (simulated seconds): the wall
    # clock's lag on a busy machine, times the speed
    wake_lag_p50_s: float | None = None
    wake_lag_p90_s: float | None = None
    mean_pick_time_s: float | None = None
    orders_packed: int = 0
    rider_utilisation: float | None = None  # time on trips / time on duty
    riders_on_duty: int = 0
    # (store, SKU) in stock at the start, none available at the end: sold out during the
    # run, not the shelves that were empty before it (the tower's "empty since before")
    stock_outs: int = 0
    low_stock_events: int = 0  # stock fell to the reorder level (inventory.low_stock)
    oversells: int = 0
    ledger_mismatches: int = 0
    carts_created: int = 0
    carts_abandoned: int = 0  # created in the run and not checked out (left, or in progress)
    holds_expired: int = 0  # carts and orders whose stock hold ran out (the sweeper)
    payments_failed: int = 0
    simulation: dict[str, int] = field(default_factory=dict)  # the simulation's own counters
    errors: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def render(self, console: Console | None = None) -> None:
        console = console or Console()
        table = Table(title=f"qc demo: {self.simulated_s / 60:.0f} simulated minutes")
        table.add_column("figure")
        table.add_column("value", justify="right")

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f} %"

        def minutes(x: float | None) -> str:
            return "-" if x is None else f"{x / 60:.1f} min"

        tz = ZoneInfo(self.timezone)
        begin, end = (
            datetime.fromisoformat(t).astimezone(tz) for t in (self.started_at, self.ended_at)
        )
        rows = [
            ("simulated time", f"{begin:%a %H:%M} -> {end:%H:%M} ({self.timezone})"),
            ("speed", f"{self.speed:g}x ({self.wall_s:.0f} s wall)"),
            (
                "wake-up lag p50 / p90 (simulated)",
                "-"
                if self.wake_lag_p50_s is None or self.wake_lag_p90_s is None
                else f"{self.wake_lag_p50_s:.1f} / {self.wake_lag_p90_s:.1f} s",
            ),
            ("orders placed", str(self.orders_placed)),
            ("carried over from an earlier run", str(self.orders_carried_over)),
            ("delivered", str(self.orders_delivered)),
            ("cancelled", str(self.orders_cancelled)),
            *[(f"  cancelled: {k}", str(v)) for k, v in sorted(self.cancelled_by_reason.items())],
            ("still in flight", str(self.orders_in_flight)),
            ("delivered within 10 min", pct(self.delivered_within_10_min)),
            (
                f"  within 10 min, placed after the first {WARM_S // 60} min",
                f"{pct(self.delivered_within_10_min_warm)} of {self.delivered_warm}",
            ),
            ("delivered within 15 min", pct(self.delivered_within_15_min)),
            ("customers refused (no store in time)", pct(self.refused_share)),
            ("order-to-door p50", minutes(self.order_to_door_p50_s)),
            ("order-to-door p90", minutes(self.order_to_door_p90_s)),
            (
                "mean pick time",
                "-" if self.mean_pick_time_s is None else f"{self.mean_pick_time_s:.0f} s",
            ),
            (
                "rider utilisation",
                f"{pct(self.rider_utilisation)} ({self.riders_on_duty} riders)",
            ),
            ("carts not checked out", f"{self.carts_abandoned} of {self.carts_created}"),
            ("holds expired", str(self.holds_expired)),
            ("payments failed", str(self.payments_failed)),
            ("sold out during the run", str(self.stock_outs)),
            ("low-stock events", str(self.low_stock_events)),
            ("oversells", str(self.oversells)),
            ("ledger mismatches", str(self.ledger_mismatches)),
        ]
        for name, value in rows:
            style = (
                "bold red" if name in ("oversells", "ledger mismatches") and value != "0" else None
            )
            table.add_row(name, value, style=style)
        console.print(table)
        if self.simulation:
            sim = Table(
                title="what the simulated people did (their own counters: people in the "
                "apps are not in them, the figures above count everyone)"
            )
            sim.add_column("event")
            sim.add_column("count", justify="right")
            for k, v in sorted(self.simulation.items()):
                sim.add_row(k, str(v))
            console.print(sim)
        if self.errors:
            console.print(
                "unexpected answers: "
                + ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items()))
            )


# the run's orders: placed in it, or carried on from an earlier run (not done at its start)
_RUN = "coalesce(delivered_at, cancelled_at, 'infinity') >= %(start)s"

_ORDERS = f"""
    SELECT count(*) FILTER (WHERE placed_at >= %(start)s),
           count(*) FILTER (WHERE placed_at < %(start)s),
           count(*) FILTER (WHERE status = 'DELIVERED'),
           count(*) FILTER (WHERE status = 'CANCELLED'),
           count(*) FILTER (WHERE status NOT IN ('DELIVERED', 'CANCELLED')),
           avg((extract(epoch FROM delivered_at - placed_at) <= 600)::int)
             FILTER (WHERE status = 'DELIVERED'),
           avg((extract(epoch FROM delivered_at - placed_at) <= 900)::int)
             FILTER (WHERE status = 'DELIVERED'),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - placed_at))
             FILTER (WHERE status = 'DELIVERED'),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - placed_at))
             FILTER (WHERE status = 'DELIVERED'),
           avg((extract(epoch FROM delivered_at - placed_at) <= 600)::int)
             FILTER (WHERE status = 'DELIVERED' AND placed_at >= %(warm)s),
           count(*) FILTER (WHERE status = 'DELIVERED' AND placed_at >= %(warm)s)
    FROM orders WHERE {_RUN}"""

_REASONS = f"""
    SELECT coalesce(split_part(cancel_reason, ':', 1), 'unknown'), count(*)
    FROM orders WHERE {_RUN} AND status = 'CANCELLED' GROUP BY 1"""

_PICKS = """
    SELECT avg(t.duration_s), count(*)
    FROM pick_tasks t JOIN orders o ON o.store_id = t.store_id AND o.order_id = t.order_id
    WHERE o.placed_at >= %(start)s AND t.status = 'PACKED' AND t.duration_s IS NOT NULL"""

_UTILISATION = """
    WITH duty AS (
      SELECT rider_id, sum(greatest(0, extract(epoch FROM
               least(coalesce(ended_at, %(end)s), %(end)s) - greatest(started_at, %(start)s))))
             AS s
      FROM rider_shifts WHERE started_at < %(end)s
        AND coalesce(ended_at, %(end)s) > %(start)s
      GROUP BY rider_id),
    busy AS (
      SELECT rider_id, sum(greatest(0, extract(epoch FROM
               least(CASE WHEN status IN ('COMPLETED', 'CANCELLED') THEN updated_at
                          ELSE %(end)s END, %(end)s) - greatest(created_at, %(start)s))))
             AS s
      FROM trips WHERE created_at < %(end)s GROUP BY rider_id)
    SELECT count(*), sum(duty.s), sum(coalesce(busy.s, 0))
    FROM duty LEFT JOIN busy USING (rider_id) WHERE duty.s > 0"""

_CARTS = """
    SELECT count(*), count(*) FILTER (WHERE status <> 'CHECKED_OUT')
    FROM carts WHERE created_at >= %(start)s"""

_PAYMENTS = """
    SELECT count(*) FROM payments p JOIN orders o
      ON o.store_id = p.store_id AND o.order_id = p.order_id
    WHERE o.placed_at >= %(start)s AND p.status = 'FAILED'"""

_LEDGER = """
    SELECT store_id, sku_id,
           sum(d_available), sum(d_reserved), sum(d_damaged), sum(d_in_transit),
           sum(-d_reserved) FILTER (WHERE movement = 'COMMIT'),
           sum(greatest(d_available, 0))
             FILTER (WHERE movement IN ('RECEIPT', 'RETURN', 'ADJUSTMENT'))
    FROM stock_ledger WHERE entry_id > %(high)s GROUP BY store_id, sku_id"""

_UNBACKED_DELIVERIES = """
    SELECT DISTINCT i.store_id, i.sku_id
    FROM order_items i JOIN orders o ON o.store_id = i.store_id AND o.order_id = i.order_id
    WHERE o.placed_at >= %(start)s AND o.status = 'DELIVERED' AND i.quantity > 0
      AND i.status IN ('FULFILLED', 'SUBSTITUTED')
      AND i.quantity > coalesce((
        SELECT sum(r.quantity) FROM inventory_reservations r
        WHERE r.store_id = i.store_id AND r.sku_id = i.sku_id AND r.status = 'COMMITTED'
          AND r.order_id IN (o.order_id::text, 'sub:' || o.order_id::text || ':' || i.sku_id)
      ), 0)"""

_LOW_STOCK = """
    SELECT count(*) FROM outbox WHERE topic = 'inventory.low_stock' AND created_at >= %(start)s"""

_EXPIRED = """
    SELECT count(DISTINCT reference) FROM stock_ledger
    WHERE entry_id > %(high)s AND movement = 'EXPIRE'"""

_STOCK = """
    SELECT store_id, sku_id, available_qty, reserved_qty, damaged_qty, in_transit_qty
    FROM store_inventory"""


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def build_report(
    database_url: str,
    snapshot: Snapshot,
    *,
    end: datetime,
    wall_s: float,
    speed: float,
    timezone: str = "UTC",
    simulation: Counter[str] | None = None,
    errors: Counter[str] | None = None,
    lag_s: list[float] | None = None,
) -> Report:
    start = snapshot.at
    params = {
        "start": start,
        "end": end,
        "high": snapshot.ledger_entry_id,
        "warm": start + timedelta(seconds=WARM_S),
    }
    report = Report(
        started_at=start.isoformat(),
        ended_at=end.isoformat(),
        simulated_s=(end - start).total_seconds(),
        wall_s=wall_s,
        speed=speed,
        timezone=timezone,
        simulation=dict(sorted((simulation or Counter()).items())),
        errors=dict(sorted((errors or Counter()).items())),
    )
    if lag_s:
        late = sorted(lag_s)
        report.wake_lag_p50_s, report.wake_lag_p90_s = (
            late[int(len(late) * q)] for q in (0.5, 0.9)
        )
    counted = simulation or Counter()
    if counted["sessions"]:
        refused = counted["not_serviceable"] + counted["checkout_refused:not_serviceable"]
        report.refused_share = refused / counted["sessions"]
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute(_ORDERS, params).fetchone()
        assert row is not None
        (
            report.orders_placed,
            report.orders_carried_over,
            report.orders_delivered,
            report.orders_cancelled,
            report.orders_in_flight,
        ) = (int(x) for x in row[:5])
        report.delivered_within_10_min = _f(row[5])
        report.delivered_within_15_min = _f(row[6])
        report.order_to_door_p50_s = _f(row[7])
        report.order_to_door_p90_s = _f(row[8])
        report.delivered_within_10_min_warm = _f(row[9])
        report.delivered_warm = int(row[10])
        report.cancelled_by_reason = {
            str(reason): int(n) for reason, n in conn.execute(_REASONS, params).fetchall()
        }
        picks = conn.execute(_PICKS, params).fetchone()
        assert picks is not None
        report.mean_pick_time_s, report.orders_packed = _f(picks[0]), int(picks[1])
        riders, duty_s, busy_s = conn.execute(_UTILISATION, params).fetchone() or (0, None, None)
        report.riders_on_duty = int(riders)
        report.rider_utilisation = float(busy_s) / float(duty_s) if duty_s else None
        carts = conn.execute(_CARTS, params).fetchone()
        assert carts is not None
        report.carts_created, report.carts_abandoned = int(carts[0]), int(carts[1])
        failed = conn.execute(_PAYMENTS, params).fetchone()
        report.payments_failed = int(failed[0]) if failed else 0
        expired = conn.execute(_EXPIRED, params).fetchone()
        report.holds_expired = int(expired[0]) if expired else 0
        low = conn.execute(_LOW_STOCK, params).fetchone()
        report.low_stock_events = int(low[0]) if low else 0

        end_stock = {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in conn.execute(_STOCK)}
        movements = conn.execute(_LEDGER, params).fetchall()
        unbacked = {(r[0], r[1]) for r in conn.execute(_UNBACKED_DELIVERIES, params)}

    oversold: set[tuple[str, str]] = set(unbacked)
    oversold |= {key for key, b in end_stock.items() if min(b) < 0}
    moved: dict[tuple[str, str], Buckets] = {}
    for store, sku, da, dr, dd, dt, committed, arrived in movements:
        key = (store, sku)
        moved[key] = (int(da), int(dr), int(dd), int(dt))
        before = snapshot.stock.get(key, (0, 0, 0, 0))
        if int(committed or 0) > before[0] + before[1] + int(arrived or 0):
            oversold.add(key)
    report.oversells = len(oversold)
    mismatched = 0
    for key in snapshot.stock.keys() | end_stock.keys():
        before = snapshot.stock.get(key, (0, 0, 0, 0))
        delta = moved.get(key, (0, 0, 0, 0))
        expected = tuple(b + d for b, d in zip(before, delta, strict=True))
        if expected != end_stock.get(key, (0, 0, 0, 0)):
            mismatched += 1
    report.ledger_mismatches = mismatched
    report.stock_outs = sum(
        1
        for key, before in snapshot.stock.items()
        if before[0] > 0 and end_stock.get(key, (0,))[0] == 0
    )
    return report
