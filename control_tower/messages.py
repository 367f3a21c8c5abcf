"""Messages between the control tower's parts (dataclass style)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from control_tower.state import FeedPayload


@dataclass
class FeedReceived(Message):
    """A snapshot or changes message from the ops feed."""

    payload: FeedPayload


@dataclass
class FeedState(Message):
    """The feed came up (its snapshot arrived) or went down (``detail`` says why)."""

    up: bool
    detail: str = ""


@dataclass
class FeedStopped(Message):
    """The server refused the feed for good: 4401 (log in again) or 4403 (not this
    manager's city)."""

    code: int
    reason: str


@dataclass
class LoggedIn(Message):
    """A manager logged in, to watch ``city`` (None: their own)."""

    city: str | None
