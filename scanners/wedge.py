"""Keyboard-wedge scanner detection: tell a scanner's key burst from a person typing.

A USB wedge scanner types a whole code within a few tens of milliseconds and ends it with
Enter; people type far slower. The detector holds keys while they might still be a burst and
hands them back as ``passthrough`` as soon as they cannot be, so typing is delayed by at most
``max_gap`` and never lost. Time is always passed in (monotonic seconds), never read here.

Typical UI wiring: call ``feed`` for every key event, replay ``passthrough`` keys into the
focused widget, handle ``scan``; while ``pending`` is true, schedule ``poll`` after ``max_gap``
so a lone held key is released even if no further key arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from scanners.symbology import classify, split_symbology_id
from scanners.types import Scan, utc_now

ENTER_KEYS = frozenset({"enter", "\r", "\n"})


@dataclass(frozen=True, slots=True)
class FeedResult:
    scan: Scan | None = None
    passthrough: tuple[str, ...] = ()  # keys to deliver as ordinary typing, in order
    pending: bool = False  # keys are being held back as a possible burst


class WedgeDetector:
    def __init__(
        self,
        *,
        max_gap: float = 0.05,
        min_length: int = 4,
        max_duration: float = 1.0,
        terminators: frozenset[str] = ENTER_KEYS,
        source: str = "wedge",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.max_gap = max_gap
        self.min_length = min_length
        self.max_duration = max_duration
        self.terminators = terminators
        self.source = source
        self._clock = clock  # wall-clock stamp for Scan.at only; detection uses `at`
        self._held: list[str] = []
        self._first_at = 0.0
        self._last_at = float("-inf")
        self._typing = False

    def feed(self, key: str, at: float) -> FeedResult:
        """Feed one key: a single character, or a key name such as "enter" or "left"."""
        continuing = at - self._last_at <= self.max_gap
        self._last_at = at
        if not continuing:
            self._typing = False
        elif self._typing:  # this run of keys already proved to be a person
            return FeedResult(passthrough=(key,))
        released = [] if continuing else self._release()
        if key in self.terminators:
            if self._is_burst(at):
                return FeedResult(scan=self._scan("".join(self._release())))
            return FeedResult(passthrough=(*released, *self._release(), key))
        if len(key) != 1:  # named keys (arrows, tab, F-keys) never come from a scanner
            self._typing = True
            return FeedResult(passthrough=(*released, *self._release(), key))
        if not self._held:
            self._first_at = at
        self._held.append(key)
        if at - self._first_at > self.max_duration:  # e.g. auto-repeat of a held-down key
            self._typing = True
            return FeedResult(passthrough=(*released, *self._release()))
        return FeedResult(passthrough=tuple(released), pending=True)

    def poll(self, now: float) -> FeedResult:
        """Release held keys once no burst can continue them."""
        if self._held and now - self._last_at > self.max_gap:
            return FeedResult(passthrough=tuple(self._release()))
        return FeedResult(pending=bool(self._held))

    def _is_burst(self, at: float) -> bool:
        raw = "".join(self._held)
        return (
            len(raw) >= self.min_length
            and at - self._first_at <= self.max_duration
            and bool(split_symbology_id(raw)[1])  # a bare "]C1" carries no code
        )

    def _release(self) -> list[str]:
        held, self._held = self._held, []
        return held

    def _scan(self, raw: str) -> Scan:
        _, code = split_symbology_id(raw)
        return Scan(code=code, symbology=classify(raw), source=self.source, at=self._clock())
