"""The rider's position to the server: every interval on duty the newest fix over the rider
socket; while that fails, fixes are kept on disk and replayed in order through the batch
endpoint once the server is reachable again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from qc_tui.api import is_transient
from qc_tui.connection import Connection
from rider_app.api import RiderApi
from rider_app.battery import BatterySource
from rider_app.gps import FixPusher, OfflineBuffer
from rider_app.gps.fix import Fix
from rider_app.link import LinkDown, RiderLink
from rider_app.tracking import to_gps_fixes
from shared.client import ApiError

log = logging.getLogger(__name__)


class FixesNotSent(ConnectionError):
    """The batch did not reach the server (or not now): the buffer keeps it."""


class PositionSender:
    def __init__(
        self,
        client: RiderApi,
        connection: Connection,
        buffer: OfflineBuffer,
        *,
        link: RiderLink | None,
        interval_s: float,
        wall: Callable[[], datetime],
        counted: Callable[[int], None],
        taken: Callable[[], None],
        battery: BatterySource = lambda: None,
    ) -> None:
        self.client = client
        self.connection = connection
        self.buffer = buffer
        self.link = link  # None: no socket, every fix is kept and sent in batches
        self.interval_s = interval_s
        self._wall = wall
        self._counted = counted  # how many fixes are kept, after every attempt
        self._taken = taken  # the server took a fix (it may have changed the rider's status)
        self._battery = battery  # read as each fix or batch goes out
        self.pusher = FixPusher(self._send_fix, self._send_batch, buffer, interval_s=interval_s)
        self.last_push_at: datetime | None = None  # when the server last took a fix
        self.dropped_fixes = 0  # refused by the server for good (invalid)

    def offer(self, fix: Fix) -> None:
        self.pusher.offer(fix)

    async def run(self, on_duty: Callable[[], bool]) -> None:
        """Every ``interval_s`` on duty: push once; for ever (cancel to stop)."""
        next_at = time.monotonic() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if on_duty():
                await self.push_once()
            next_at = max(next_at + self.interval_s, time.monotonic())

    async def push_once(self) -> None:
        await self._attempt(self.pusher.tick(), "pushing a fix failed")

    async def flush(self) -> None:
        """Replay what was kept, in order."""
        await self._attempt(self.pusher.flush(), "replaying kept fixes failed")

    async def _attempt(self, push: Awaitable[object], failed: str) -> None:
        try:
            await push
        except Exception:  # logged; the buffer keeps what was not sent
            log.exception(failed)
        self._counted(len(self.buffer))

    async def _send_fix(self, fix: Fix) -> None:
        if self.link is None:
            raise LinkDown("no rider socket")
        await self.link.send_fix(fix, self._battery())
        self.last_push_at = self._wall()
        self._taken()

    async def _send_batch(self, fixes: Sequence[Fix]) -> None:
        """The pusher's replay: the batch endpoint, in order, duplicates ignored by the
        server. Anything that may work later keeps the batch; a final refusal drops it.
        The server applies a batch's usable fixes and lists the ones it can never take
        (older than a day, from the future): those are dropped too. Each fix carries the
        battery as it is now (the dispatcher reads only the last one)."""
        try:
            result = await self.client.post_locations(to_gps_fixes(fixes, self._battery()))
        except ApiError as exc:
            self.connection.report(exc)
            if is_transient(exc) or exc.code == "off_duty":
                raise FixesNotSent(exc.detail) from exc
            self.dropped_fixes += len(fixes)  # final, and none of them was usable
            log.warning("the server refused %d kept fix(es) for good: %s", len(fixes), exc)
            return
        if result.refused:
            self.dropped_fixes += len(result.refused)
            log.warning(
                "the server refused %d kept fix(es) for good: %s",
                len(result.refused),
                ", ".join(sorted({r.code for r in result.refused})),
            )
        self.last_push_at = self._wall()
        self.connection.answered()
        self._taken()
