"""The server's clock as a terminal knows it, and how countdowns are written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qc_tui.clock import ServerClock, mmss, sla_text

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def fixed_wall() -> datetime:
    return NOW


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_offset_estimated_from_deadlines_ignores_jitter() -> None:
    clock = ServerClock(fixed_wall)
    clock.observe(NOW.replace(minute=40), 300)  # the server runs 5 minutes ahead
    assert clock.now() == NOW.replace(minute=35)
    clock.observe(NOW.replace(minute=40), 299)  # within the tolerance: no twitch
    assert clock.now() == NOW.replace(minute=35)
    clock.observe(None, 10)  # an answer without a deadline says nothing
    assert clock.seconds_until(NOW.replace(minute=36)) == 60.0
    assert clock.seconds_since(None) is None


def test_a_stated_server_time_runs_at_the_server_speed() -> None:
    monotonic = Monotonic()
    clock = ServerClock(fixed_wall, monotonic)
    assert clock.now() == NOW  # nothing stated yet: the wall clock
    clock.sync(NOW + timedelta(hours=1), 20.0)
    monotonic.now += 3  # three real seconds are a minute in a city run 20x
    assert clock.now() == NOW + timedelta(hours=1, minutes=1)


def test_countdowns() -> None:
    assert (mmss(75), mmss(-30.5), mmss(0.4), mmss(3600)) == ("01:15", "-00:30", "00:00", "60:00")
    assert sla_text(None).plain == "—"
    assert (sla_text(90).plain, str(sla_text(90).style)) == ("01:30", "bold red")
    assert (sla_text(200).plain, str(sla_text(200).style)) == ("03:20", "bold yellow")
    assert (sla_text(-30).plain, str(sla_text(600).style)) == ("LATE 00:30", "green")


def test_a_wall_clock_moment_on_the_server_clock() -> None:
    """A GPS fix taken by the wall clock, dated on a server running 20x, an hour ahead."""
    wall = [NOW]
    clock = ServerClock(lambda: wall[0])
    assert clock.speed == 1.0
    assert clock.of_wall(NOW) == NOW  # nothing stated: the wall clock
    clock.sync(NOW + timedelta(hours=1), 20.0)
    assert clock.speed == 20.0
    assert clock.of_wall(NOW) == NOW + timedelta(hours=1)
    # three real seconds after the answer came are a minute on the server
    assert clock.of_wall(NOW + timedelta(seconds=3)) == NOW + timedelta(hours=1, minutes=1)
    wall[0] = NOW + timedelta(seconds=10)  # a later answer pins it again
    clock.sync(NOW + timedelta(hours=2), 20.0)
    assert clock.of_wall(NOW + timedelta(seconds=10)) == NOW + timedelta(hours=2)
