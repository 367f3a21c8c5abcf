"""Messages between the rider app's parts (dataclass style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from scanners.types import Scan
from shared.schemas import TripPublic


@dataclass
class TripUpdated(Message, bubble=False):
    """The current trip changed (a poll, a push, or the answer to the rider's own step)."""

    trip: TripPublic


@dataclass
class ServerPushed(Message):
    """An event the server pushed over the rider socket (``delivery.offered``...)."""

    event: dict[str, Any]


@dataclass
class LabelRead(Message):
    """A bag label was read (keyboard-wedge scanner or typed by hand)."""

    scan: Scan
