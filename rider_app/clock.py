"""Time on the rider handheld: the wall clock (injectable, so tests and snapshots can fix
it), the server's clock as the last answer told it, and how countdowns and ages are
written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.text import Text

URGENT_S = 120  # an SLA countdown turns red under two minutes
SOON_S = 300  # and yellow under five


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ServerTime:
    """The server clock (which may run ``speed`` times faster than real time) as a trip
    answer stated it, moved on by the real time since the answer came. Server deadlines
    (the offer, SLAs, ETAs) are judged by it, never by the handheld's own wall clock."""

    at: datetime  # the answer's server_now
    speed: float  # simulated seconds per real second
    received: float  # monotonic seconds when the answer came

    def now(self, monotonic: float) -> datetime:
        return self.at + timedelta(seconds=max(0.0, monotonic - self.received) * self.speed)


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


def minutes(seconds: float) -> str:
    """A riding time as people say it: ``<1 min``, ``4 min``, ``1 h 05``."""
    if seconds < 60:
        return "<1 min"
    whole = round(seconds / 60)
    return f"{whole} min" if whole < 60 else f"{whole // 60} h {whole % 60:02d}"


def distance(metres: float | None) -> str:
    if metres is None:
        return "—"
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km"


def age(seconds: float) -> str:
    """How long ago: ``3 s``, ``2 min``."""
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
