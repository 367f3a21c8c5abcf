"""Messages between the rider app's parts (dataclass style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from scanners.types import Scan
from shared.schemas.delivery import RiderPublic, TripPublic


@dataclass
class LoggedIn(Message):
    """A rider logged in: open the shift."""


@dataclass
class TripAnswered(Message):
    """The answer to one of the rider's own steps: newer than any poll in flight."""

    trip: TripPublic


@dataclass
class RiderAnswered(Message):
    """The server's answer about the rider (a shift change)."""

    rider: RiderPublic


@dataclass
class PollAsked(Message):
    """Ask the server again for the rider, the trip or both."""

    rider: bool = False
    trip: bool = True


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
