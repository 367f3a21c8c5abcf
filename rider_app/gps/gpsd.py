"""gpsd, the Linux GPS daemon: JSON reports over TCP (port 2947 by default).

After ``?WATCH={"enable":true,"json":true}`` the daemon streams one JSON object per line;
positions come in TPV ("time-position-velocity") reports, usable once ``mode`` is 2 (2D) or 3
(3D). If the daemon goes away (restart, receiver unplugged and gpsd exiting) the source keeps
reconnecting with exponential backoff until it is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from rider_app.gps.base import Clock
from rider_app.gps.fix import Fix, utc_now
from shared.aio import wait_event

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2947
WATCH_COMMAND = b'?WATCH={"enable":true,"json":true}\n'
# SKY reports list every satellite and can run to several kB; asyncio's default is 64 kB.
_LINE_LIMIT = 1 << 20


def _number(report: dict[str, Any], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_report(line: str | bytes, *, clock: Clock = utc_now) -> Fix | None:
    """The fix in one gpsd report line, or None for other classes, no-fix TPVs and junk."""
    try:
        report = json.loads(line)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("class") != "TPV":
        return None
    mode = report.get("mode")
    lat, lng = _number(report, "lat"), _number(report, "lon")
    if not isinstance(mode, int) or mode < 2 or lat is None or lng is None:
        return None
    at = clock()  # gpsd omits time when the receiver does not supply it
    if isinstance(stamp := report.get("time"), str):
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        # gpsd time is UTC by definition; never let a missing "Z" mean local time.
        at = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    # eph (gpsd >= 3.20) is the horizontal 95 % error; older daemons only give it per axis.
    accuracy = _number(report, "eph")
    if accuracy is None:
        axes = [v for v in (_number(report, "epx"), _number(report, "epy")) if v is not None]
        accuracy = max(axes) if axes else None
    try:
        return Fix(
            lat,
            lng,
            at,
            speed_mps=_number(report, "speed"),  # gpsd reports m/s already
            heading_deg=_number(report, "track"),
            accuracy_m=accuracy,
            source="gpsd",
        )
    except ValueError:
        return None


class GpsdSource:
    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        connect_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: Clock = utc_now,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connections = 0  # sessions opened so far, for diagnostics
        self._clock = clock
        self._closed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    async def fixes(self) -> AsyncIterator[Fix]:
        delay = self.backoff_initial_s
        while not self._closed.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=_LINE_LIMIT),
                    self.connect_timeout_s,
                )
            except OSError as exc:  # refused, unreachable, or TimeoutError
                log.warning("gpsd at %s:%s unavailable: %s", self.host, self.port, exc)
            else:
                self.connections += 1
                self._writer = writer
                try:
                    writer.write(WATCH_COMMAND)
                    await writer.drain()
                    while line := await reader.readline():  # b"" once the daemon hangs up
                        if (fix := parse_report(line, clock=self._clock)) is not None:
                            delay = self.backoff_initial_s  # the session worked; retry fast
                            yield fix
                    log.warning("gpsd at %s:%s closed the connection", self.host, self.port)
                # ValueError: a line longer than the limit, so the stream cannot be resynced.
                except (OSError, ValueError) as exc:
                    log.warning("gpsd at %s:%s connection lost: %s", self.host, self.port, exc)
                finally:
                    self._writer = None
                    writer.close()
                    with suppress(OSError):
                        await writer.wait_closed()
            if await self._closed_within(delay):
                return
            delay = min(delay * 2, self.backoff_max_s)

    async def close(self) -> None:
        self._closed.set()
        if self._writer is not None:
            self._writer.close()  # ends a pending readline, so fixes() returns promptly

    async def _closed_within(self, seconds: float) -> bool:
        return await wait_event(self._closed, seconds)
