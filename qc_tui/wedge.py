"""Keyboard-wedge scanner input on a screen.

Scanner input needs no focused field: every key reaches ``on_key``, which feeds the
keyboard-wedge detector. A scanner's burst becomes a scan (``scanned``); keys a person typed
come back out of the detector (at most ``max_gap`` later) and run the screen's key bindings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from textual import events
from textual.screen import Screen
from textual.timer import Timer

from scanners.types import Scan
from scanners.wedge import WedgeDetector

GS = "\x1d"  # FNC1 in GS1 data, sent by wedge scanners as Ctrl+]


def wedge_key(event: events.Key, *, fnc1: bool = True) -> str:
    """What the detector is fed: the character a key typed, or the key's name."""
    char = event.character
    if event.key != "enter" and char is not None and len(char) == 1:
        if char.isprintable() or (fnc1 and char == GS):
            return char
    return event.key


class WedgeScreen(Screen[None]):
    FNC1 = True  # a GS1 separator is part of a code (product barcodes; not bag labels)

    def __init__(self, wedge: WedgeDetector, monotonic: Callable[[], float]) -> None:
        super().__init__()
        self.wedge = wedge
        self.monotonic = monotonic  # key timing; tests pass a clock they step
        self._fed: deque[str] = deque()  # key names of the keys the detector holds
        self._wedge_timer: Timer | None = None

    def scanned(self, scan: Scan) -> None:
        """A scanner's burst was read."""
        raise NotImplementedError

    async def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self._fed.append(event.key)
        result = self.wedge.feed(wedge_key(event, fnc1=self.FNC1), self.monotonic())
        if result.scan is not None:
            self._fed.clear()  # the held keys and the Enter were the scan
            self.scanned(result.scan)
        await self._replay(len(result.passthrough))
        self._arm_wedge_poll(result.pending)

    async def _replay(self, count: int) -> None:
        """Keys the detector handed back were typed by a person: run their bindings."""
        for _ in range(min(count, len(self._fed))):
            key = self._fed.popleft()
            active = self.app.active_bindings.get(key)
            if active is not None and active.enabled:
                await self.app.run_action(active.binding.action, active.node)

    def _arm_wedge_poll(self, pending: bool) -> None:
        if self._wedge_timer is not None:
            self._wedge_timer.stop()
            self._wedge_timer = None
        if pending:
            self._wedge_timer = self.set_timer(self.wedge.max_gap * 1.2, self._poll_wedge)

    async def _poll_wedge(self) -> None:
        self._wedge_timer = None
        result = self.wedge.poll(self.monotonic())
        await self._replay(len(result.passthrough))
        self._arm_wedge_poll(result.pending)
