"""The city's figures minute by minute over the last hours, for the overview's trends.

Pure: no I/O, no Textual. Every feed message applied to the view is sampled into the
minute of the server's clock it carries (``at``); a minute no message reached stays a gap.
Orders per minute are the server's own counts (``CityOps.orders_per_minute``, its last
30 minutes), so they are taken for every minute that series covers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.schemas.ops import CityOps, StoreOps

WINDOW_MINUTES = 180
MINUTE = timedelta(minutes=1)


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def late_share(stores: Iterable[StoreOps]) -> float:
    """Active orders predicted to breach their SLA, as a share of all active orders
    (0 with none active: nothing is going late)."""
    active = breaches = 0
    for store in stores:
        active += sum(store.orders_by_state.values())
        breaches += store.predicted_breaches
    return min(1.0, breaches / active) if active else 0.0


@dataclass
class Minute:
    orders: int | None = None
    late_share: float | None = None
    idle_riders: int | None = None


class Trends:
    """One :class:`Minute` per minute of the server's clock, the newest ``window`` kept."""

    def __init__(self, window_minutes: int = WINDOW_MINUTES) -> None:
        self.window = window_minutes
        self._minutes: dict[datetime, Minute] = {}
        self.newest: datetime | None = None

    def record(self, at: datetime, city: CityOps | None, stores: Iterable[StoreOps]) -> None:
        """Sample the view as it stands at ``at`` (later samples in a minute win)."""
        now = minute_of(at)
        if self.newest is None or now > self.newest:
            self.newest = now
        stores = list(stores)
        point = self._minute(now)
        point.late_share = late_share(stores)
        point.idle_riders = sum(s.idle_riders for s in stores)
        if city is not None:
            for ago, count in enumerate(reversed(city.orders_per_minute)):
                self._minute(now - ago * MINUTE).orders = count
        self._trim()

    def _minute(self, minute: datetime) -> Minute:
        return self._minutes.setdefault(minute, Minute())

    def _trim(self) -> None:
        if self.newest is None:
            return
        oldest = self.newest - (self.window - 1) * MINUTE
        for minute in [m for m in self._minutes if m < oldest or m > self.newest]:
            del self._minutes[minute]

    @property
    def minutes(self) -> list[datetime]:
        """Every minute from the oldest recorded to the newest, gaps included."""
        if not self._minutes or self.newest is None:
            return []
        first = min(self._minutes)
        count = int((self.newest - first) / MINUTE) + 1
        return [first + i * MINUTE for i in range(count)]

    def series(self, figure: str) -> list[float | None]:
        """``figure`` ("orders", "late_share", "idle_riders") per minute, oldest first;
        None where no message told it."""
        gap = Minute()
        return [getattr(self._minutes.get(m, gap), figure) for m in self.minutes]
