"""What the picker's screens work with, handed to each screen when it is made."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from picker_app.api import PickingApi
from picker_app.scans import ScanSender
from qc_tui.clock import ServerClock
from qc_tui.connection import Connection


@dataclass(slots=True)
class PickerContext:
    client: PickingApi
    connection: Connection
    clock: ServerClock  # the server's, for SLA deadlines
    monotonic: Callable[[], float]  # key timing for the wedge detector
    scans: ScanSender
    store_id: str | None = None  # set at login
    login_hint: str | None = None
    camera: int | str | os.PathLike[str] | None = None  # also scan with this camera
    queue_poll_s: float = 5.0
    pushed: bool = False  # the server's work socket is up: the queue is pushed, polls are rare
