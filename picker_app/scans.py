"""Scans on their way to the server: kept in the outbox the moment they are read, sent in
order, one at a time, each with the scan_id it keeps for life."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.message import Message

from picker_app.api import PickingApi
from picker_app.messages import ScanAccepted, ScanRefused
from picker_app.outbox import PendingScan, ScanOutbox
from qc_tui.api import is_transient
from qc_tui.connection import Connection
from shared.client import ApiError


class ScanSender:
    def __init__(
        self,
        client: PickingApi,
        connection: Connection,
        outbox: ScanOutbox,
        *,
        settled: Callable[[PendingScan, Message], None],
        counted: Callable[[int], None],
        session_expired: Callable[[], None],
    ) -> None:
        self.client = client
        self.connection = connection
        self.outbox = outbox
        self._settled = settled  # the server answered for a scan (accepted or refused)
        self._counted = counted  # how many scans are kept, after every change
        self._session_expired = session_expired
        self._wake = asyncio.Event()  # a scan joined the outbox

    def pending(self, order_id: str) -> list[PendingScan]:
        return self.outbox.for_order(order_id)

    def submit(self, *, order_id: str, code: str, source: str) -> PendingScan:
        """Keep the scan (with its id for life) and have the sender deliver it."""
        entry = PendingScan.new(order_id=order_id, code=code, source=source)
        self.outbox.add(entry)
        self._counted(len(self.outbox))
        self._wake.set()
        return entry

    async def run(self) -> None:
        """Send the outbox in order, one scan at a time. A scan leaves the outbox only once
        the server has answered for it; until then it is resent with the same scan_id."""
        connection = self.connection
        attempt = 0
        while True:
            entry = self.outbox.head()
            if entry is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                result = await self.client.scan(
                    entry.order_id, scan_id=entry.scan_id, code=entry.code
                )
            except ApiError as exc:
                if is_transient(exc):
                    connection.report(exc)
                    if exc.status == 401 and attempt == 0:
                        self._session_expired()
                    await connection.retry_pause(connection.retry_delay(attempt))
                    attempt += 1
                    continue
                self._settle(entry, ScanRefused(entry, exc.code, exc.detail, exc.problem))
            else:
                connection.answered()
                self._settle(entry, ScanAccepted(entry, result))
            attempt = 0

    def _settle(self, entry: PendingScan, message: Message) -> None:
        self.outbox.done(entry.scan_id)
        self._counted(len(self.outbox))
        self._settled(entry, message)
