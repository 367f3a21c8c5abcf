"""Time on a staff terminal. Deadlines (SLAs, offers, ETAs) are the server's, and the server's
clock may run faster than the wall in a demo, so a terminal judges them by the server's clock
as its answers state it, never by its own wall clock alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.text import Text

URGENT_S = 120  # an SLA countdown turns red under two minutes
SOON_S = 300  # and yellow under five


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ServerTime:
    """The server clock (which may run ``speed`` times faster than real time) as an answer
    stated it, moved on by the real time since the answer came."""

    at: datetime  # the answer's server_now
    speed: float  # simulated seconds per real second
    received: float  # monotonic seconds when the answer came
    wall_at: datetime | None = None  # the terminal's wall clock when the answer came

    def now(self, monotonic: float) -> datetime:
        return self.at + timedelta(seconds=max(0.0, monotonic - self.received) * self.speed)

    def of_wall(self, moment: datetime) -> datetime:
        """The server's time at a moment of the terminal's wall clock."""
        wall_at = self.wall_at if self.wall_at is not None else moment
        return self.at + (moment - wall_at) * self.speed


class ServerClock:
    """The server's "now" as this terminal knows it. An answer that states the server's time
    and speed (``sync``) pins it; until one does, it is the wall clock plus an offset
    estimated from answers that carry a deadline and the seconds left to it (``observe``),
    where jitter under ``tolerance`` is ignored so countdowns do not twitch."""

    def __init__(
        self,
        wall: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        tolerance: timedelta = timedelta(seconds=2),
    ) -> None:
        self.wall = wall  # tests and snapshots fix it
        self._monotonic = monotonic
        self._tolerance = tolerance
        self.offset = timedelta(0)
        self.stated: ServerTime | None = None

    def now(self) -> datetime:
        if self.stated is not None:
            return self.stated.now(self._monotonic())
        return self.wall() + self.offset

    @property
    def speed(self) -> float:
        """Server seconds per real second, as last stated (1 until a server says)."""
        return self.stated.speed if self.stated is not None else 1.0

    def sync(self, server_now: datetime, speed: float) -> None:
        self.stated = ServerTime(server_now, speed, self._monotonic(), self.wall())

    def of_wall(self, moment: datetime) -> datetime:
        """A moment of this terminal's wall clock (a GPS fix's time, say) on the server's
        clock: the rider's fixes must not look stale to a server running faster."""
        if self.stated is not None:
            return self.stated.of_wall(moment)
        return moment + self.offset

    def observe(self, deadline: datetime | None, seconds_left: int | None) -> None:
        if deadline is None or seconds_left is None:
            return
        offset = deadline - timedelta(seconds=seconds_left) - self.wall()
        if abs(offset - self.offset) > self._tolerance:
            self.offset = offset

    def seconds_until(self, moment: datetime | None) -> float | None:
        return None if moment is None else (moment - self.now()).total_seconds()

    def seconds_since(self, moment: datetime | None) -> float | None:
        return None if moment is None else (self.now() - moment).total_seconds()


def mmss(seconds: float) -> str:
    """``07:05``; negative times (overdue) get a minus sign."""
    whole = int(abs(seconds))
    sign = "-" if seconds < 0 and whole else ""
    return f"{sign}{whole // 60:02d}:{whole % 60:02d}"


def sla_text(seconds: float | None) -> Text:
    """An SLA countdown, coloured by urgency; ``LATE mm:ss`` once the deadline has passed."""
    if seconds is None:
        return Text("—")
    style = "bold red" if seconds < URGENT_S else "bold yellow" if seconds < SOON_S else "green"
    label = mmss(seconds) if seconds >= 0 else f"LATE {mmss(-seconds)}"
    return Text(label, style=style)
