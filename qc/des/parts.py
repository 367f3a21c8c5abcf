"""What one simulated day leaves for its report, and the report built from it.

A city can be simulated in several processes, each a group of stores with its own private
PostgreSQL and Valkey (``qc simulate --workers N``); each leaves its ``Parts`` (per-order
rows, counts, people's hours) and the parts of all groups merge into one report, every
percentile computed over every order of the city.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from qc.des.config import DesConfig
from qc.des.report import DesReport, fill_times, hourly

Row = tuple[uuid.UUID, str, list[float]]


@dataclass
class Parts:
    stores: int = 0
    events: int = 0
    setup_s: float = 0.0
    rows: list[Row] = field(default_factory=list)  # delivered orders' stage times
    promised: dict[uuid.UUID, float | None] = field(default_factory=dict)
    hour_of: dict[uuid.UUID, int] = field(default_factory=dict)  # local hour placed
    by_hour: dict[int, dict[str, int]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    rider_shift_s: float = 0.0
    rider_busy_s: float = 0.0
    picker_shift_s: float = 0.0
    picker_busy_s: float = 0.0
    five_line_picks: list[float] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)
    oversells: int = 0
    ledger_mismatches: int = 0
    orders_cancelled: int = 0
    orders_open_at_end: int = 0

    @staticmethod
    def merged(parts: list[Parts]) -> Parts:
        out = Parts()
        stats: Counter[str] = Counter()
        for p in parts:
            out.stores += p.stores
            out.events += p.events
            out.setup_s = max(out.setup_s, p.setup_s)
            out.rows += p.rows
            out.promised |= p.promised
            out.hour_of |= p.hour_of
            for hour, counts in p.by_hour.items():
                into = out.by_hour.setdefault(hour, {})
                for k, v in counts.items():
                    into[k] = into.get(k, 0) + v
            stats.update(p.stats)
            out.rider_shift_s += p.rider_shift_s
            out.rider_busy_s += p.rider_busy_s
            out.picker_shift_s += p.picker_shift_s
            out.picker_busy_s += p.picker_busy_s
            out.five_line_picks += p.five_line_picks
            out.distances += p.distances
            out.oversells += p.oversells
            out.ledger_mismatches += p.ledger_mismatches
            out.orders_cancelled += p.orders_cancelled
            out.orders_open_at_end += p.orders_open_at_end
        out.stats = dict(stats)
        out.rows.sort(key=lambda r: (out.hour_of.get(r[0], 0), str(r[0])))
        return out


def build(config: DesConfig, parts: Parts, wall_s: float) -> DesReport:
    s = parts.stats
    report = DesReport(
        seed=config.seed,
        stores=parts.stores,
        hours=config.span_hours,
        policies=config.policies.__dict__.copy(),
        promise_min=config.promise_min,
        wall_s=round(wall_s, 1),
        setup_s=round(parts.setup_s, 1),
        events=parts.events,
        arrivals=s.get("arrivals", 0),
        not_serviceable=s.get("not_serviceable", 0),
        refused_at_checkout=s.get("checkout_refused:not_serviceable", 0),
        orders_confirmed=s.get("orders_confirmed", 0),
        orders_cancelled=parts.orders_cancelled,
        orders_open_at_end=parts.orders_open_at_end,
        oversells=parts.oversells,
        ledger_mismatches=parts.ledger_mismatches,
        counters=dict(sorted(s.items())),
    )
    fill_times(report, parts.rows, parts.promised)
    report.hourly = hourly(parts.by_hour, parts.rows, parts.hour_of)
    report.rider_hours = round(parts.rider_shift_s / 3600, 2)
    report.picker_hours = round(parts.picker_shift_s / 3600, 2)
    if report.rider_hours:
        report.orders_per_rider_hour = round(report.orders_delivered / report.rider_hours, 3)
        report.rider_utilisation = round(parts.rider_busy_s / 3600 / report.rider_hours, 4)
    if report.picker_hours:
        report.picker_utilisation = round(parts.picker_busy_s / 3600 / report.picker_hours, 4)
    report.physical = _physical(config, parts)
    report.staffing_plan = [
        {"hour": h, "orders": round(o, 1), "pickers": p, "riders": r}
        for h, o, p, r in config.plan()
    ]
    return report


def _physical(config: DesConfig, parts: Parts) -> dict[str, str]:
    p, s = config.physics, parts.stats
    five, dist = sorted(parts.five_line_picks), sorted(parts.distances)

    def q(values: list[float], f: float) -> float:
        return values[min(len(values) - 1, int(f * len(values)))] if values else float("nan")

    return {
        "rider speed": f"{p.speed_kmh[0]:g}-{p.speed_kmh[1]:g} km/h per rider",
        "road / straight line": f"{p.road_factor[0]:g}-{p.road_factor[1]:g} -> measured "
        f"{s.get('ride_m_road', 0) / max(1, s.get('ride_m_straight', 0)):.2f}",
        "5-line pick (walk, scan, pack)": f"p10 {q(five, 0.1) / 60:.1f} / p50 "
        f"{q(five, 0.5) / 60:.1f} / p90 {q(five, 0.9) / 60:.1f} min ({len(five)} picks)",
        "at the door": f"{p.door_s[0]:g}-{p.door_s[1]:g} s",
        "store radius (seed)": "3 km; served customers at p10/p50/p90 "
        f"{q(dist, 0.1) / 1000:.1f}/{q(dist, 0.5) / 1000:.1f}/{q(dist, 0.9) / 1000:.1f} km",
        "push latency / polling": f"{p.push_latency_s:g} s / pickers every "
        f"{p.picker_poll_s:g} s, riders every {p.rider_poll_s:g} s",
    }
