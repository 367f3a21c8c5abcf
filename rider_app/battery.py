"""The handheld's battery, sent with each fix: the dispatcher spares a rider whose battery
is low a long trip (it reads the last one reported)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

BatterySource = Callable[[], float | None]  # percent, None where unknown
READ_EVERY_S = 60.0  # a battery moves slowly: no OS call for every 5-s fix
LOW_PCT = 15.0  # below this the shift screen warns


class HandheldBattery:
    """This machine's battery (psutil), read at most every ``every_s``; None where there
    is none (a desktop) or the platform cannot tell."""

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, every_s: float = READ_EVERY_S
    ) -> None:
        self._monotonic = monotonic
        self._every_s = every_s
        self._read_at: float | None = None
        self._pct: float | None = None

    def __call__(self) -> float | None:
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= self._every_s:
            self._read_at = now
            self._pct = read_battery()
        return self._pct


def read_battery() -> float | None:
    try:
        battery = psutil.sensors_battery()
    except Exception:  # an unsupported platform or an unreadable sensor: unknown
        log.debug("no battery reading", exc_info=True)
        return None
    if battery is None:
        return None
    return min(100.0, max(0.0, float(battery.percent)))
