"""When the demo's simulated day starts, said once and used everywhere (the banner, the
clock, the report): the asked hour, or now; never before anything already recorded; a
closed hour moved to the stores' opening and, by default, a quiet hour to the next one
worth watching. Whatever moved it is said, with the stores' hours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from qc.sim.demand import hourly_profile
from server.stores.selection import is_open  # the rule the API applies, not re-written

LIVELY = 0.55  # the order rate (x the base, demand.hourly_profile) a default demo starts at:
# 06:15-23:00 (the quiet afternoon, 0.7, is kept: only the night is skipped)
STEP_S = 900.0  # moved starts land on a quarter hour
HORIZON_S = 2 * 86400.0

StoreHours = list[tuple[dict[str, Any] | None, str]]  # (operating hours, zone) per store


@dataclass(frozen=True)
class Start:
    at: float  # unix s on the simulated clock
    note: str | None = None  # why it is not the asked (or current) time

    def local(self, timezone: str) -> datetime:
        return datetime.fromtimestamp(self.at, ZoneInfo(timezone))


def parse_start(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        hh, mm = value.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"--start wants HH:MM, got {value!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"--start wants HH:MM, got {value!r}")
    return h, m


def choose_start(
    *,
    start_at: tuple[int, int] | None,
    timezone: str,
    latest: float | None,
    now: float | None = None,
    unfinished: int = 0,
) -> float:
    """When the simulated day starts (unix s): the next ``start_at`` local time not before
    ``latest`` + 1 min (today's if that is still allowed), or now (not before it).

    Orders an earlier run left in flight are carried on from where it stopped: jumping to
    tomorrow's ``start_at`` would leave them a day old on every SLA figure."""
    now = time.time() if now is None else now
    floor = (latest or 0.0) + 60.0
    if start_at is None or unfinished:
        return max(now, floor)
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    day = local.replace(hour=start_at[0], minute=start_at[1], second=0, microsecond=0)
    while day.timestamp() < floor:
        day += timedelta(days=1)
    return day.timestamp()


def anchor_for(start: float, *, speed: float, now: float | None = None) -> tuple[float, float]:
    """(anchor, start): a clock that reads ``start`` at real ``now`` and runs ``speed``
    times faster. At real speed the anchor cannot move the clock: (now, now)."""
    now = time.time() if now is None else now
    if abs(speed - 1.0) < 1e-9:
        return now, now
    return (now * speed - start) / (speed - 1.0), start


def store_hours(database_url: str) -> StoreHours:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT s.operating_hours, c.timezone FROM dark_stores s "
            "JOIN cities c ON c.city_id = s.city_id WHERE s.is_operational"
        ).fetchall()
    return [(hours, tz) for hours, tz in rows]


def any_open(stores: StoreHours, at: float) -> bool:
    return not stores or any(
        is_open(hours, datetime.fromtimestamp(at, ZoneInfo(tz))) for hours, tz in stores
    )


def lively(at: float, timezone: str) -> bool:
    local = datetime.fromtimestamp(at, ZoneInfo(timezone))
    return hourly_profile(local.hour + local.minute / 60) >= LIVELY


def next_good(at: float, *, stores: StoreHours, timezone: str, want_lively: bool) -> float:
    """``at``, or the first quarter hour after it when some store is open (and, if
    ``want_lively``, orders come at least ``LIVELY`` x the base rate); ``at`` if none
    comes within two days."""
    t = at
    while t < at + HORIZON_S:
        if any_open(stores, t) and (not want_lively or lively(t, timezone)):
            return t
        t = (t // STEP_S + 1) * STEP_S
    return at


def hours_text(stores: StoreHours) -> str:
    """The stores' hours as a person reads them ("06:00-02:00 every day (Asia/Kolkata)")."""
    windows = {
        (day, tuple(map(tuple, w)))
        for hours, _ in stores
        for day, w in (hours or {}).items()
        if hours
    }
    if not stores or any(not hours for hours, _ in stores):
        return "round the clock"
    zones = sorted({tz for _, tz in stores})
    shapes = {w for _, w in windows}
    days = {d for d, _ in windows}
    if len(shapes) == 1 and len(days) == 7:
        text = ", ".join(f"{s}-{e}" for s, e in next(iter(shapes)))
        return f"{text} every day ({', '.join(zones)})"
    return f"by store and day ({', '.join(zones)}; GET /v1/stores lists them)"


def plan_start(
    *,
    start_at: tuple[int, int] | None,
    timezone: str,
    latest: float | None,
    unfinished: int,
    stores: StoreHours,
    now: float | None = None,
) -> Start:
    """The start and, if it moved, why: a carried-on run, closed stores, a quiet hour."""
    now = time.time() if now is None else now
    wanted = choose_start(
        start_at=start_at, timezone=timezone, latest=latest, now=now, unfinished=unfinished
    )
    notes = []
    if start_at and unfinished:
        notes.append(
            f"{unfinished} orders of an earlier run are still in flight: the city carries on "
            f"where it stopped instead of starting at {start_at[0]:02d}:{start_at[1]:02d} "
            "(a fresh QC_HOME starts anew)"
        )
    # by default a quiet night is skipped; an asked hour or a run carried on is kept
    skip_quiet = start_at is None and not unfinished
    start = next_good(wanted, stores=stores, timezone=timezone, want_lively=skip_quiet)
    if start != wanted:
        was = datetime.fromtimestamp(wanted, ZoneInfo(timezone))
        closed = not any_open(stores, wanted)
        why = "the stores are closed" if closed else "orders hardly come"
        day = datetime.fromtimestamp(start, ZoneInfo(timezone))
        notes.append(
            f"at {was:%H:%M} {why} (stores open {hours_text(stores)}): the day starts at "
            f"{day:%a %H:%M} instead" + ("; --start HH:MM picks the hour" if skip_quiet else "")
        )
    return Start(start, "\n".join(notes) or None)
