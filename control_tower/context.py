"""What the control tower's screens work with, handed to each screen when it is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from control_tower.api import OpsApi
from control_tower.state import CityView

if TYPE_CHECKING:
    from control_tower.actions import ManagerActions


def city_zone(name: str | None) -> tzinfo | None:
    """The zone the server names for the city; None when it names none this machine knows."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(slots=True)
class TowerContext:
    client: OpsApi
    chosen_tz: tzinfo | None  # the zone the manager asked for (None: the city's)
    monotonic: Callable[[], float]  # the pipeline timers' clock; tests and snapshots fix it
    city_id: str = ""  # the city watched (set at login)
    view: CityView = field(default_factory=CityView)  # the city as the feed told it
    actions: ManagerActions = field(init=False)  # what the manager can do from any screen

    @property
    def tz(self) -> tzinfo | None:
        """The zone times are shown in: the chosen one, else the city's (the day, the
        stores' hours and the reports are the city's), else this machine's (None)."""
        if self.chosen_tz is not None:
            return self.chosen_tz
        city = self.view.city
        return city_zone(city.timezone) if city is not None else None

    def clock_time(self, at: datetime) -> str:
        """``18:30:05`` in the zone times are shown in."""
        return f"{at.astimezone(self.tz):%H:%M:%S}"

    def timer_clock(self) -> float:
        """Seconds on the server's clock, counted locally: the pipeline timers run as
        fast as the (possibly sped-up) city does between feed updates."""
        return self.monotonic() * self.view.clock_speed

    def as_of(self) -> str:
        at = self.view.at
        if at is None:
            return "waiting for the feed…"
        return f"as of {self.clock_time(at)} {at.astimezone(self.tz):%Z}"
