"""The demo riders' handhelds report a battery that drains over the shift, so the
dispatcher's battery term sees something plausible in the demo."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from qc.sim.riders import Rider


def test_the_battery_drains_with_the_shift_and_never_dies() -> None:
    now = [1_000_000.0]
    world: Any = SimpleNamespace(rng=lambda name: random.Random(name), now=lambda: now[0])
    login: Any = SimpleNamespace(login="rider.001")
    rider = Rider(world, login)
    rider.shift_started = now[0]
    start = rider._gps().battery_pct
    assert start is not None and 55 <= start <= 100
    now[0] += 2 * 3600
    later = rider._gps().battery_pct
    assert later is not None and start - 24 <= later <= start - 12
    now[0] += 20 * 3600
    assert rider._gps().battery_pct == 5.0
