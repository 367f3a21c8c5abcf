"""Helpers the GPS tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rider_app.gps.fix import Fix

T0 = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


class FakeTime:
    """A clock whose ``sleep`` returns at once and moves ``clock`` on by what was asked, so
    paced playback runs instantly and the pacing can still be checked."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def track(count: int, *, start: int = 0) -> list[Fix]:
    """``count`` distinct fixes 5 s apart, heading north from Koramangala."""
    return [
        Fix(12.9352 + i * 1e-4, 77.6245, T0 + timedelta(seconds=5 * i), 6.0, 0.0, 4.0, source="sim")
        for i in range(start, start + count)
    ]
