"""The picker terminal: log in, take the most urgent order, walk and scan it, pack it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from textual import work
from textual.app import App
from textual.message import Message
from textual.reactive import reactive

from picker_app.api import DEFAULT_SERVER, RETRY_DELAYS, PickingApi, describe, is_transient
from picker_app.clock import ServerClock, utc_now
from picker_app.messages import ScanAccepted, ScanRefused, TaskPacked
from picker_app.outbox import PendingScan, ScanOutbox
from picker_app.screens.login import LoginScreen
from picker_app.screens.pick import PickScreen
from picker_app.screens.queue import QueueScreen
from shared.aio import wait_event
from shared.client import ApiError, ConnectionLost, QcClient
from shared.schemas import PackResult, PickList

T = TypeVar("T")


class PickerApp(App[None]):
    CSS_PATH = "picker.tcss"
    TITLE = "qc picker"
    ENABLE_COMMAND_PALETTE = False

    online: reactive[bool] = reactive(True)
    pending_scans: reactive[int] = reactive(0)

    def __init__(
        self,
        *,
        server_url: str = DEFAULT_SERVER,
        store: str | None = None,
        login: str | None = None,
        camera: int | str | os.PathLike[str] | None = None,
        client: PickingApi | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        outbox_path: Path | None = None,
        queue_poll_s: float = 5.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        super().__init__()
        self.client: PickingApi = client if client is not None else QcClient(server_url)
        self.store_id = store
        self.login_hint = login
        self.camera_source = camera
        self.server_clock = ServerClock(clock)
        # key timing for the keyboard-wedge detector; tests pass a clock they step
        self.monotonic = monotonic
        self.outbox = ScanOutbox(outbox_path)
        self.queue_poll_s = queue_poll_s
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.pick_screen: PickScreen | None = None  # the open task, if any
        self.connection_detail = ""
        self.packed: list[PackResult] = []  # this session's packed tasks, newest last
        self._scan_wake = asyncio.Event()  # a scan joined the outbox
        self._retry_now = asyncio.Event()  # the server answered again: stop waiting

    # --- screens --------------------------------------------------------------------
    def on_mount(self) -> None:
        self.pending_scans = len(self.outbox)
        self.scan_sender()
        if self.client.user is not None and self.store_id:
            self.push_screen(QueueScreen())
        else:
            self.push_screen(LoginScreen())

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def logged_in(self, store_id: str) -> None:
        self.store_id = store_id
        self.switch_screen(QueueScreen())

    def open_task(self, pick: PickList) -> None:
        if self.pick_screen is not None and self.pick_screen.order_id == str(pick.order_id):
            return
        self.push_screen(PickScreen(pick))

    def back_to_queue(self, *, claim_next: bool = False) -> None:
        """Close the task's screens; with ``claim_next`` take the next task at once."""
        while len(self.screen_stack) > 1 and not isinstance(self.screen, QueueScreen):
            self.pop_screen()
        if claim_next and isinstance(self.screen, QueueScreen):
            self.screen.action_claim()

    def on_task_packed(self, message: TaskPacked) -> None:
        self.packed.append(message.result)

    def retry_delay(self, attempt: int) -> float:
        return self.retry_delays[min(attempt, len(self.retry_delays) - 1)]

    # --- connection -----------------------------------------------------------------
    def report_offline(self, exc: ApiError) -> None:
        self.connection_detail = exc.detail
        if self.online:
            self.online = False
            self.probe_connection()

    def report_online(self) -> None:
        if not self.online:
            self.online = True
            self.connection_detail = ""
        self._retry_now.set()

    @work(exclusive=True, group="probe")
    async def probe_connection(self) -> None:
        """While the server is unreachable, knock on /healthz with growing pauses."""
        attempt = 0
        while not self.online:
            await self.retry_pause(self.retry_delay(attempt))
            attempt += 1
            with contextlib.suppress(ConnectionLost):
                await self.client.health()
                self.report_online()

    async def retry_pause(self, seconds: float) -> None:
        """A retry pause that ends early when the server is seen answering again."""
        self._retry_now.clear()
        await wait_event(self._retry_now, seconds)

    async def send_until_answered(
        self, send: Callable[[], Awaitable[T]], *, waiting: Callable[[str], None]
    ) -> T:
        """Send a request again, unchanged, until the server gives a final answer. Only for
        requests the server applies once however often they come (a short names the units
        found, a substitute the line's substitute), so a lost answer is simply asked for
        again. ``waiting`` hears why before each pause; a final refusal is raised, and so is
        an expired session (the picker must log in again)."""
        attempt = 0
        while True:
            try:
                answer = await send()
            except ApiError as exc:
                if not is_transient(exc) or exc.status == 401:
                    raise
                if isinstance(exc, ConnectionLost):
                    self.report_offline(exc)
                waiting(describe(exc))
                await self.retry_pause(self.retry_delay(attempt))
                attempt += 1
                continue
            self.report_online()
            return answer

    # --- scans ----------------------------------------------------------------------
    def submit_scan(self, *, order_id: str, code: str, source: str) -> PendingScan:
        """Keep the scan (with its id for life) and have the sender deliver it."""
        entry = PendingScan.new(order_id=order_id, code=code, source=source)
        self.outbox.add(entry)
        self.pending_scans = len(self.outbox)
        self._scan_wake.set()
        return entry

    @work(exclusive=True, group="scan-sender")
    async def scan_sender(self) -> None:
        """Send the outbox in order, one scan at a time. A scan leaves the outbox only once
        the server has answered for it; until then it is resent with the same scan_id."""
        attempt = 0
        while True:
            entry = self.outbox.head()
            if entry is None:
                self._scan_wake.clear()
                await self._scan_wake.wait()
                continue
            try:
                result = await self.client.scan(
                    entry.order_id, scan_id=entry.scan_id, code=entry.code
                )
            except ApiError as exc:
                if is_transient(exc):
                    if isinstance(exc, ConnectionLost):
                        self.report_offline(exc)
                    elif exc.status == 401 and attempt == 0:
                        self.notify(
                            "Session expired: scans are kept; log in again to send them",
                            severity="error",
                            timeout=30,
                        )
                    await self.retry_pause(self.retry_delay(attempt))
                    attempt += 1
                    continue
                self._settle(entry, ScanRefused(entry, exc.code, exc.detail, exc.problem))
            else:
                self.report_online()
                self._settle(entry, ScanAccepted(entry, result))
            attempt = 0

    def _settle(self, entry: PendingScan, message: Message) -> None:
        self.outbox.done(entry.scan_id)
        self.pending_scans = len(self.outbox)
        screen = self.pick_screen
        if screen is not None and screen.order_id == entry.order_id:
            screen.post_message(message)
        elif isinstance(message, ScanRefused):
            self.notify(f"An earlier scan was refused: {message.detail}", severity="error")
