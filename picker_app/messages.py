"""Messages between the picker app's parts (dataclass style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from picker_app.outbox import PendingScan
from scanners.types import Scan
from shared.schemas.picking import PackResult, PickList, ScanResult


@dataclass
class LoggedIn(Message):
    """A picker logged in to work at ``store_id``."""

    store_id: str


@dataclass
class TaskClaimed(Message):
    """The server handed this picker a task: open it."""

    pick: PickList


@dataclass
class BackToQueue(Message):
    """Close the task's screens; with ``claim_next`` take the next task at once."""

    claim_next: bool = False


@dataclass
class ScanRead(Message):
    """A barcode was read (keyboard wedge, camera or typed by hand)."""

    scan: Scan


@dataclass
class ScanAccepted(Message):
    """The server counted the scan (``result.replayed``: it had already counted it)."""

    entry: PendingScan
    result: ScanResult


@dataclass
class ScanRefused(Message):
    """The server refused the scan (wrong item, over-pick, task no longer open...)."""

    entry: PendingScan
    code: str
    detail: str
    problem: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskPacked(Message):
    result: PackResult


@dataclass
class WorkPushed(Message):
    """The server pushed the store's queue or a change to it (``/ws/picker``)."""

    event: dict[str, Any]
