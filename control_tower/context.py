"""What the control tower's screens work with, handed to each screen when it is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING

from control_tower.api import OpsApi
from control_tower.state import CityView

if TYPE_CHECKING:
    from control_tower.actions import ManagerActions


@dataclass(slots=True)
class TowerContext:
    client: OpsApi
    tz: tzinfo | None  # the zone times are shown in (None: this machine's)
    monotonic: Callable[[], float]  # the pipeline timers' clock; tests and snapshots fix it
    city_id: str = ""  # the city watched (set at login)
    view: CityView = field(default_factory=CityView)  # the city as the feed told it
    actions: ManagerActions = field(init=False)  # what the manager can do from any screen

    def timer_clock(self) -> float:
        """Seconds on the server's clock, counted locally: the pipeline timers run as
        fast as the (possibly sped-up) city does between feed updates."""
        return self.monotonic() * self.view.clock_speed

    def as_of(self) -> str:
        at = self.view.at
        return f"as of {at.astimezone(self.tz):%H:%M:%S}" if at else "waiting for the feed…"
