"""The picker terminal: log in, take the most urgent order, walk and scan it, pack it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message
from textual.reactive import reactive

from picker_app.api import PickingApi
from picker_app.context import PickerContext
from picker_app.messages import (
    BackToQueue,
    LoggedIn,
    ScanRefused,
    TaskClaimed,
    TaskPacked,
    WorkPushed,
)
from picker_app.outbox import PendingScan, ScanOutbox
from picker_app.scans import ScanSender
from picker_app.screens.login import LoginScreen
from picker_app.screens.pick import PickScreen
from picker_app.screens.queue import QueueScreen
from qc_tui.api import DEFAULT_SERVER, RETRY_DELAYS
from qc_tui.app import ServerApp
from qc_tui.clock import ServerClock, utc_now
from qc_tui.push import PushSocket
from shared.client import PickerClient
from shared.schemas.picking import PackResult


class PickerApp(ServerApp):
    CSS_PATH = "picker.tcss"
    TITLE = "qc picker"
    ENABLE_COMMAND_PALETTE = False
    KEPT_COUNT = "pending_scans"

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
        socket: bool | None = None,  # the work socket; default: with a real client only
    ) -> None:
        api: PickingApi = client if client is not None else PickerClient(server_url)
        self.use_socket = client is None if socket is None else socket
        self.work_socket: PushSocket | None = None
        super().__init__(health=api.health, retry_delays=retry_delays)
        self.client = api
        scans = ScanSender(
            api,
            self.connection,
            ScanOutbox(outbox_path),
            settled=self._settled,
            counted=self._counted,
            session_expired=self._session_expired,
        )
        self.ctx = PickerContext(
            client=api,
            connection=self.connection,
            clock=ServerClock(clock),
            monotonic=monotonic,
            scans=scans,
            store_id=store,
            login_hint=login,
            camera=camera,
            queue_poll_s=queue_poll_s,
        )
        self.packed: list[PackResult] = []  # this session's packed tasks, newest last

    @property
    def outbox(self) -> ScanOutbox:
        return self.ctx.scans.outbox

    @property
    def store_id(self) -> str | None:
        return self.ctx.store_id

    @property
    def pick_screen(self) -> PickScreen | None:
        """The open task's screen, if any."""
        return next((s for s in self.screen_stack if isinstance(s, PickScreen)), None)

    def kept_note(self) -> str:
        waiting = self.pending_scans
        if not waiting:
            return ""
        return f" · {waiting} scan{'s' if waiting != 1 else ''} kept, sent when back"

    # --- screens --------------------------------------------------------------------
    def on_mount(self) -> None:
        # SLA countdowns and the pick timer run on the server's clock, at its speed
        self.keep_time(self.ctx.clock, getattr(self.client, "server_clock", None))
        self.pending_scans = len(self.outbox)
        self.send_scans()
        if self.client.user is not None and self.ctx.store_id:
            self.push_screen(QueueScreen(self.ctx))
            self.open_work_socket()
        else:
            self.push_screen(LoginScreen(self.ctx))

    async def on_unmount(self) -> None:
        self.workers.cancel_all()  # no call in flight on the client as it closes
        await self.client.aclose()

    def on_logged_in(self, message: LoggedIn) -> None:
        self.ctx.store_id = message.store_id
        self.switch_screen(QueueScreen(self.ctx))
        self.open_work_socket()

    # --- work pushed ----------------------------------------------------------------
    def open_work_socket(self) -> None:
        """``/ws/picker``: the store's queue and each new task, pushed as it happens."""
        if not self.use_socket or self.work_socket is not None:
            return
        self.work_socket = PushSocket(
            self.client.base_url,
            "/ws/picker",
            lambda: self.client.token,
            on_event=self._work_pushed,
            on_state=self._work_socket_state,
            retry_delays=self.connection.retry_delays,
        )
        self._run_work_socket(self.work_socket)

    @work(exclusive=True, group="work-socket")
    async def _run_work_socket(self, socket: PushSocket) -> None:
        await socket.run()

    def _work_pushed(self, event: dict[str, Any]) -> None:
        self.post_message(WorkPushed(event))

    def _work_socket_state(self, up: bool) -> None:
        self.ctx.pushed = up

    def on_work_pushed(self, message: WorkPushed) -> None:
        """The queue changed: the queue screen asks for it at once (a task may come both
        in the snapshot and pushed: the queue's answer has each once). A new task for a
        picker waiting on the queue rings the bell. A customer's answer about a line of
        the open task resolves that line."""
        event = message.event
        if event.get("type") == "picking.substitution_resolved":
            picking = self.pick_screen
            if picking is not None and picking.order_id == event.get("order_id"):
                picking.customer_answered(event)
            return
        screen = self.screen
        if not isinstance(screen, QueueScreen):
            return
        if message.event.get("type") == "picking.queued" and not screen.tasks:
            self.bell()
        screen.refresh_queue()

    def on_task_claimed(self, message: TaskClaimed) -> None:
        screen = self.pick_screen
        if screen is not None and screen.order_id == str(message.pick.order_id):
            return
        self.push_screen(PickScreen(self.ctx, message.pick))

    def on_back_to_queue(self, message: BackToQueue) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, QueueScreen):
            self.pop_screen()
        if message.claim_next and isinstance(self.screen, QueueScreen):
            self.screen.action_claim()

    def on_task_packed(self, message: TaskPacked) -> None:
        self.packed.append(message.result)

    # --- scans ----------------------------------------------------------------------
    @work(exclusive=True, group="scan-sender")
    async def send_scans(self) -> None:
        await self.ctx.scans.run()

    def _counted(self, pending: int) -> None:
        self.pending_scans = pending

    def _session_expired(self) -> None:
        self.notify(
            "Session expired: scans are kept; log in again to send them",
            severity="error",
            timeout=30,
        )

    def _settled(self, entry: PendingScan, message: Message) -> None:
        screen = self.pick_screen
        if screen is not None and screen.order_id == entry.order_id:
            screen.post_message(message)
        elif isinstance(message, ScanRefused):
            self.notify(f"An earlier scan was refused: {message.detail}", severity="error")
