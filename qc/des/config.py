"""The deterministic simulation's knobs: the policies (levers), the physical world, the
demand curve and the staffing plan derived from it.

Everything here is plain data: the same ``DesConfig`` and seed replay the same day.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

# Relative order rate per local hour (Bengaluru): nothing while the stores are closed
# (02:00-06:00, the seed's operating hours), a breakfast peak and a higher evening peak,
# each about 3x the day's mean rate.
HOURLY_DEMAND = (
    0.3, 0.15, 0.0, 0.0, 0.0, 0.0,  # 00-05
    0.5, 1.6, 2.8, 2.4, 1.4, 1.0,  # 06-11
    1.1, 1.0, 0.7, 0.65, 0.8, 1.4,  # 12-17
    2.6, 3.5, 3.0, 1.9, 1.0, 0.5,  # 18-23
)  # fmt: skip

# Relative daily volume by weekday (Monday = 1, the one-day run's date): a quieter
# midweek, busier Friday evenings and weekends. A fixed curve, so a seed replays it.
WEEKDAY_DEMAND = (1.0, 0.96, 0.97, 1.0, 1.08, 1.18, 1.12)  # Mon..Sun

LEVERS = ("push", "preassign", "batching", "dynamic_radius", "walk_order")


@dataclass(frozen=True)
class Policies:
    """The operations levers (issue 16 point 3); each can be turned off to measure it.

    ``push``: a new pick task wakes an idle picker, an offer reaches the rider, at once;
    off, pickers glance at the queue every ``picker_poll_s`` and riders at the trip screen
    every ``rider_poll_s``. The others map onto the server's ``Settings`` flags.
    """

    push: bool = True
    preassign: bool = True
    batching: bool = True
    dynamic_radius: bool = True
    walk_order: bool = True
    busy_candidates: bool = True

    def settings(self) -> dict[str, bool]:
        """The server's own switches (``server.kit.config.Settings``) for these policies."""
        return {
            "work_push": self.push,
            "dispatch_preassign": self.preassign,
            "dispatch_batching": self.batching,
            "dispatch_busy_candidates": self.busy_candidates,
            "serviceability_dynamic": self.dynamic_radius,
            "pick_walk_order": self.walk_order,
        }

    def without(self, lever: str) -> Policies:
        if lever not in LEVERS and lever != "busy_candidates":
            raise ValueError(f"unknown lever {lever}")
        return replace(self, **{lever: False})

    def off(self) -> list[str]:
        return [name for name, on in asdict(self).items() if not on]


@dataclass(frozen=True)
class Physics:
    """The physical city; the simulation never speeds it up to keep a promise."""

    speed_kmh: tuple[float, float] = (18.0, 25.0)  # a rider's cruise speed, drawn per rider
    road_factor: tuple[float, float] = (1.3, 1.5)  # road distance / straight line, per ride
    door_s: tuple[float, float] = (30.0, 60.0)  # park, walk up, hand over, OTP
    label_scan_s: tuple[float, float] = (10.0, 25.0)  # at the store: bags found and scanned
    offer_read_s: tuple[float, float] = (3.0, 8.0)  # the rider reads and accepts an offer
    # picking: the pick path is walked bin by bin (S-shaped walk, or aisle by aisle)
    pick_start_s: tuple[float, float] = (10.0, 20.0)  # read the list, take a basket
    bin_step_s: float = 0.35  # per bin position walked
    aisle_change_s: tuple[float, float] = (4.0, 7.0)
    line_s: tuple[float, float] = (7.0, 11.0)  # find the item, scan the first unit
    extra_unit_s: tuple[float, float] = (1.5, 3.0)
    pack_s: tuple[float, float] = (15.0, 25.0)
    push_latency_s: float = 2.0  # a websocket push to a terminal or a handheld
    picker_poll_s: float = 30.0  # without push: a picker glances at the queue this often
    rider_poll_s: float = 45.0  # without push: a rider glances at the trip screen this often
    # where customers live: around a store, denser near it (Rayleigh, capped at the radius)
    customer_sigma_m: float = 1100.0
    customer_max_m: float = 2900.0


@dataclass(frozen=True)
class Staffing:
    """The rule that turns the demand forecast into people per store and hour."""

    picker_min_per_order: float = 2.4  # a pick with its pack
    picker_target_utilisation: float = 0.75
    rider_min_per_order: float = 12.0  # ride out, door, ride back, shared by a batch
    rider_target_utilisation: float = 0.7
    min_pickers: int = 1
    min_riders: int = 2

    def pickers(self, orders_per_hour: float) -> int:
        need = orders_per_hour * self.picker_min_per_order / 60 / self.picker_target_utilisation
        return max(self.min_pickers, math.ceil(need))

    def riders(self, orders_per_hour: float) -> int:
        need = orders_per_hour * self.rider_min_per_order / 60 / self.rider_target_utilisation
        return max(self.min_riders, math.ceil(need))


@dataclass(frozen=True)
class DesConfig:
    seed: int = 1
    stores: int = 12
    hours: float = 24.0  # simulated hours of demand (then the open orders are finished)
    start_hour: float = 0.0  # local time the day starts at
    date: str = "2026-03-02"  # a Monday; the day simulated (local, Asia/Kolkata)
    # ``days`` > 1: the run goes on day after day ((days - 1) x 24 + hours of demand)
    days: int = 1
    # the city's nights (sales rolled up hourly into sales_history, the daily
    # replenishment job at 02:00, its orders received ``replenish_lead_h`` later); on for
    # multi-day runs
    nightly: bool = False
    replenish_lead_h: float = 3.0
    history_out: str | None = None  # where the run's sales history is written (.npz)
    orders_per_store_day: float = 1250.0
    skus: int = 1200
    customers: int = 400
    payment_failure_rate: float = 0.02
    promise_min: float = 10.0  # the door time serviceability promises (QC_SERVICEABILITY_PROMISE_S)
    policies: Policies = field(default_factory=Policies)
    physics: Physics = field(default_factory=Physics)
    staffing: Staffing = field(default_factory=Staffing)
    timezone: str = "Asia/Kolkata"
    # the stores this process simulates (``--workers``: a group of the city's stores, the
    # others closed in its private database); empty: all ``stores``
    only: tuple[str, ...] = ()

    @property
    def store_count(self) -> int:
        return len(self.only) or self.stores

    @property
    def span_hours(self) -> float:
        return (self.days - 1) * 24 + self.hours

    def weekdays(self) -> list[int]:
        """The weekdays (0 = Monday) the run's demand falls on."""
        first = datetime.fromisoformat(self.date).date()
        end = self.start_hour + self.span_hours
        return sorted({(first + timedelta(days=d)).weekday() for d in range(math.ceil(end / 24))})

    def city_rate_per_hour(self, hour: float, weekday: int = 0) -> float:
        """Orders per hour for the whole city at a local time (interpolated per hour) on a
        weekday (0 = Monday)."""
        h = hour % 24.0
        lo = int(h)
        frac = h - lo
        w = HOURLY_DEMAND[lo] * (1 - frac) + HOURLY_DEMAND[(lo + 1) % 24] * frac
        daily = self.orders_per_store_day * WEEKDAY_DEMAND[weekday]
        return self.store_count * daily * w / sum(HOURLY_DEMAND)

    def store_rate_per_hour(self, hour: int, weekday: int = 0) -> float:
        """The forecast for one store in one local hour (the staffing plan's input)."""
        daily = self.orders_per_store_day * WEEKDAY_DEMAND[weekday]
        return daily * HOURLY_DEMAND[hour % 24] / sum(HOURLY_DEMAND)

    def plan(self, weekday: int = 0) -> list[tuple[int, float, int, int]]:
        """(hour, orders forecast per store, pickers, riders) for each local hour."""
        rows = []
        for hour in range(24):
            rate = self.store_rate_per_hour(hour, weekday)
            rows.append(
                (hour, rate, self.staffing.pickers(rate), self.staffing.riders(rate))
                if rate > 0
                else (hour, 0.0, 0, 0)
            )
        return rows

    def max_staff(self) -> tuple[int, int]:
        plan = [row for wd in self.weekdays() for row in self.plan(wd)]
        return max(p for _, _, p, _ in plan), max(r for _, _, _, r in plan)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
