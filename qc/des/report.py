"""Where the minutes go: the simulated day's figures, from PostgreSQL (the order's own
timestamps) plus what only the simulation saw (when the rider reached the store, the ETA
shown at checkout).

Stages of an order: placed -> confirmed -> picking started -> packed -> rider at store ->
picked up -> at the door -> delivered. A rider pre-assigned while the bag is picked is
at the store before it is packed: each moment is taken as the later of itself and the
one before, so every stage is >= 0 ("packed -> rider at store" is the bag's wait for its
rider) and the stages add up to the order-to-door time exactly.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

STAGES = (
    "placed -> confirmed",
    "confirmed -> picking started",
    "picking started -> packed",
    "packed -> rider at store",
    "rider at store -> picked up",
    "picked up -> at door",
    "at door -> delivered",
)

_DELIVERED = """
    SELECT o.order_id, o.store_id, {promised}, o.placed_at, o.confirmed_at, o.picking_at, o.packed_at,
           o.dispatched_at, s.arrived_at, o.delivered_at
    FROM orders o JOIN trip_stops s ON s.order_id = o.order_id AND s.status = 'DELIVERED'
    WHERE o.status = 'DELIVERED' ORDER BY o.placed_at, o.order_id"""


def stage_times(moments: list[float]) -> list[float]:
    """Seconds per stage from the 8 moments (see the module's note on order)."""
    out, last = [], moments[0]
    for m in moments[1:]:
        m = max(m, last)
        out.append(m - last)
        last = m
    return out


def _q(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _share(values: list[float], limit: float) -> float | None:
    return round(sum(v <= limit for v in values) / len(values), 4) if values else None


@dataclass
class DesReport:
    seed: int
    stores: int
    hours: float
    policies: dict[str, bool]
    promise_min: float = 10.0
    wall_s: float = 0.0  # the whole run, setup (seeding the city) included
    setup_s: float = 0.0
    events: int = 0
    arrivals: int = 0
    not_serviceable: int = 0  # turned away at store selection (no store reaches them now)
    refused_at_checkout: int = 0  # the store's reach shrank between selection and checkout
    orders_confirmed: int = 0
    orders_delivered: int = 0
    orders_cancelled: int = 0
    orders_open_at_end: int = 0
    within_10_min: float | None = None
    within_15_min: float | None = None
    order_to_door_p50_s: float | None = None
    order_to_door_p90_s: float | None = None
    stages: dict[str, dict[str, float | None]] = field(default_factory=dict)
    eta_mae_min: float | None = None
    eta_late_over_2_min: float | None = None
    orders_per_rider_hour: float | None = None
    rider_utilisation: float | None = None
    picker_utilisation: float | None = None
    rider_hours: float = 0.0
    picker_hours: float = 0.0
    oversells: int = 0
    ledger_mismatches: int = 0
    hourly: list[dict[str, Any]] = field(default_factory=list)  # by local hour of demand
    physical: dict[str, Any] = field(default_factory=dict)
    staffing_plan: list[dict[str, float]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def refused_share(self) -> float | None:
        """The share of demand serviceability turned away (at selection or checkout): the
        price of the promise, reported beside the share delivered within it."""
        if not self.arrivals:
            return None
        return round((self.not_serviceable + self.refused_at_checkout) / self.arrivals, 4)

    def figures(self) -> dict[str, Any]:
        """What must be identical between two runs of one seed (no wall time)."""
        d = asdict(self)
        d.pop("wall_s")
        d.pop("setup_s")
        return d

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "refused_share": self.refused_share}

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    def render(self, console: Console | None = None) -> None:
        console = console or Console()

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}%"

        def mins(x: float | None) -> str:
            return "-" if x is None else f"{x / 60:.1f} min"

        off = [k for k, v in self.policies.items() if not v]
        console.print(
            f"[bold]simulated day[/]: {self.stores} stores, {self.hours:g} h of demand, seed "
            f"{self.seed}, levers off: {', '.join(off) or 'none'}; {self.events} events; wall time "
            f"{self.wall_s:.1f} s ({self.setup_s:.1f} s of it seeding the city)"
        )
        world = Table(title="the physical world (configured -> measured)")
        world.add_column("quantity")
        world.add_column("value")
        for k, v in self.physical.items():
            world.add_row(k, str(v))
        console.print(world)
        plan = Table(title="staffing plan per store (rule from the demand forecast)")
        for c in ("hour", "orders/h", "pickers", "riders"):
            plan.add_column(c, justify="right")
        for row in self.staffing_plan:
            if row["orders"] > 0:
                plan.add_row(
                    f"{int(row['hour']):02d}", f"{row['orders']:.0f}", str(int(row["pickers"])),
                    str(int(row["riders"])),
                )  # fmt: skip
        console.print(plan)
        stages = Table(title="where the minutes go (delivered orders)")
        for c in ("stage", "p50", "p90", "mean"):
            stages.add_column(c, justify="right" if c != "stage" else "left")
        for name, s in self.stages.items():
            stages.add_row(name, mins(s["p50"]), mins(s["p90"]), mins(s["mean"]))
        console.print(stages)
        if self.hourly:
            hours = Table(title="by local hour (orders by the hour they were placed)")
            for c in ("hour", "demand", "refused", "delivered", "within 10", "within 15",
                      "p90"):  # fmt: skip
                hours.add_column(c, justify="right")
            for h in self.hourly:
                hours.add_row(
                    f"{h['hour']:02d}", str(h["arrivals"]), str(h["refused"]),
                    str(h["delivered"]), pct(h["within_10_min"]), pct(h["within_15_min"]),
                    mins(h["p90_s"]),
                )  # fmt: skip
            console.print(hours)
        main = Table(title="the 10-minute promise")
        main.add_column("figure")
        main.add_column("value", justify="right")
        rows = [
            ("orders arriving", str(self.arrivals)),
            (f"refused: beyond a {self.promise_min:g}-min reach (selection / checkout)",
             f"{self.not_serviceable} / {self.refused_at_checkout} "
             f"({pct(self.refused_share)} of demand)"),
            ("orders confirmed / delivered", f"{self.orders_confirmed} / {self.orders_delivered}"),
            ("cancelled / open at end", f"{self.orders_cancelled} / {self.orders_open_at_end}"),
            ("served orders delivered within 10 min", pct(self.within_10_min)),
            ("delivered within 15 min", pct(self.within_15_min)),
            ("order to door p50 / p90", f"{mins(self.order_to_door_p50_s)} / "
             f"{mins(self.order_to_door_p90_s)}"),
            ("ETA at checkout: mean abs error", "-" if self.eta_mae_min is None
             else f"{self.eta_mae_min:.2f} min"),
            ("ETA: late by more than 2 min", pct(self.eta_late_over_2_min)),
            ("orders per rider-hour", f"{self.orders_per_rider_hour or 0:.2f}"),
            ("rider utilisation", pct(self.rider_utilisation)),
            ("picker utilisation", pct(self.picker_utilisation)),
            ("oversells (from PostgreSQL)", str(self.oversells)),
            ("ledger mismatches (from PostgreSQL)", str(self.ledger_mismatches)),
        ]  # fmt: skip
        for name, value in rows:
            main.add_row(name, value)
        console.print(main)


def hourly(
    by_hour: dict[int, dict[str, int]],
    rows: list[tuple[uuid.UUID, str, list[float]]],
    hour_of: dict[uuid.UUID, int],
) -> list[dict[str, Any]]:
    """Per local hour: demand, refused, and the delivered orders placed in it."""
    totals: dict[int, list[float]] = {}
    for order_id, _, stages in rows:
        totals.setdefault(hour_of[order_id], []).append(sum(stages))
    out = []
    for hour in sorted(set(by_hour) | set(totals)):
        done = totals.get(hour, [])
        out.append(
            {
                "hour": hour,
                "arrivals": by_hour.get(hour, {}).get("arrivals", 0),
                "refused": by_hour.get(hour, {}).get("refused", 0),
                "delivered": len(done),
                "within_10_min": _share(done, 600),
                "within_15_min": _share(done, 900),
                "p90_s": _q(done, 90),
            }
        )
    return out


def delivered_stages(
    database_url: str,
    rider_at_store: dict[uuid.UUID, float],
    at_door_seen: dict[uuid.UUID, float],
    promised: dict[uuid.UUID, float | None] | None = None,
) -> list[tuple[uuid.UUID, str, list[float]]]:
    """Per delivered order: its id, store and the 7 stage times in seconds. Where the
    server records the door time promised at checkout (``orders.promised_at``), it
    replaces the store-selection estimate in ``promised`` (seconds from placing)."""
    out = []
    with psycopg.connect(database_url) as conn:
        has_promise = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'orders' "
            "AND column_name = 'promised_at'"
        ).fetchone()
        query = _DELIVERED.format(promised="o.promised_at" if has_promise else "NULL")
        for row in conn.execute(query):
            order_id, store_id, promised_at = row[0], row[1], row[2]
            if promised is not None and promised_at is not None:
                promised[order_id] = promised_at.timestamp() - row[3].timestamp()
            placed, confirmed, picking, packed, dispatched, at_door, delivered = (
                m.timestamp() if m is not None else None for m in row[3:]
            )
            assert placed is not None and delivered is not None
            confirmed = confirmed or placed
            picking = picking or confirmed
            packed = packed or picking
            dispatched = dispatched or packed
            at_store = rider_at_store.get(order_id, packed)
            at_door = at_door or at_door_seen.get(order_id, delivered)
            moments = [placed, confirmed, picking, packed, at_store, dispatched, at_door, delivered]
            out.append((order_id, store_id, stage_times(moments)))
    return out


def fill_times(
    report: DesReport,
    rows: list[tuple[uuid.UUID, str, list[float]]],
    promised: dict[uuid.UUID, float | None],
) -> None:
    totals = [sum(s) for _, _, s in rows]
    report.orders_delivered = len(rows)
    report.within_10_min = _share(totals, 600)
    report.within_15_min = _share(totals, 900)
    report.order_to_door_p50_s = _q(totals, 50)
    report.order_to_door_p90_s = _q(totals, 90)
    for i, name in enumerate(STAGES):
        values = [s[i] for _, _, s in rows]
        report.stages[name] = {
            "p50": _q(values, 50),
            "p90": _q(values, 90),
            "mean": round(float(np.mean(values)), 1) if values else None,
        }
    errors = [
        (total - p)
        for (oid, _, _), total in zip(rows, totals, strict=True)
        if (p := promised.get(oid)) is not None
    ]
    if errors:
        report.eta_mae_min = round(float(np.mean(np.abs(errors))) / 60, 3)
        report.eta_late_over_2_min = round(sum(e > 120 for e in errors) / len(errors), 4)
