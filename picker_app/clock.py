"""Time on the picker terminal: the server's clock (SLA deadlines are judged by it, and it
may run faster than the wall in demos) estimated from the queue's answers, and formatting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServerClock:
    """``now()`` is the local clock plus the offset to the server's clock. The queue says
    both a task's deadline and its seconds left, which pins the server's "now" at answer
    time; jitter under ``tolerance`` is ignored so countdowns do not twitch."""

    def __init__(
        self, wall: Callable[[], datetime] = utc_now, *, tolerance: timedelta = timedelta(seconds=2)
    ) -> None:
        self._wall = wall
        self._tolerance = tolerance
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self._wall() + self.offset

    def observe(self, deadline: datetime | None, seconds_left: int | None) -> None:
        if deadline is None or seconds_left is None:
            return
        offset = deadline - timedelta(seconds=seconds_left) - self._wall()
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
