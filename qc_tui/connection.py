"""Whether the server answers, as this terminal last saw it, and how requests are retried.

Every request reports how it went (``lost`` / ``answered``). While the server is lost the app
knocks on /healthz (``probe``) with growing pauses; a retry pause ends early as soon as any
request gets an answer again, so everything waiting resumes at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from qc_tui.api import RETRY_DELAYS, describe, is_transient
from shared.aio import wait_event
from shared.client import ApiError, ConnectionLost

T = TypeVar("T")


def unreachable(exc: ApiError) -> bool:
    """The request never reached the server (or its answer never came back)."""
    return isinstance(exc, ConnectionLost)


def worth_resending(exc: ApiError) -> bool:
    """Transient, and not an expired session (the person must log in again)."""
    return is_transient(exc) and exc.status != 401


def _nothing(*_args: object) -> None:
    return None


class Connection:
    def __init__(
        self,
        health: Callable[[], Awaitable[object]],
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        on_change: Callable[[bool], None] = _nothing,
    ) -> None:
        self._health = health
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self._on_change = on_change
        self.online = True
        self.detail = ""  # why the server was lost
        self._answered = asyncio.Event()

    def retry_delay(self, attempt: int) -> float:
        return self.retry_delays[min(attempt, len(self.retry_delays) - 1)]

    async def retry_pause(self, seconds: float) -> None:
        """A retry pause that ends early when the server is seen answering again."""
        self._answered.clear()
        await wait_event(self._answered, seconds)

    def lost(self, exc: ApiError) -> None:
        self.detail = exc.detail
        if self.online:
            self.online = False
            self._on_change(False)

    def report(self, exc: ApiError) -> None:
        """A request failed: if it never reached the server, the server is lost."""
        if isinstance(exc, ConnectionLost):
            self.lost(exc)

    def answered(self) -> None:
        if not self.online:
            self.online = True
            self.detail = ""
            self._on_change(True)
        self._answered.set()

    async def probe(self) -> None:
        """While the server is lost, knock on /healthz with growing pauses."""
        attempt = 0
        while not self.online:
            await self.retry_pause(self.retry_delay(attempt))
            attempt += 1
            with contextlib.suppress(ConnectionLost):
                await self._health()
                self.answered()

    async def send_until_answered(
        self,
        send: Callable[[], Awaitable[T]],
        *,
        resend_on: Callable[[ApiError], bool] = unreachable,
        trying: Callable[[], None] = _nothing,
        waiting: Callable[[str], None] = _nothing,
    ) -> T:
        """Send a request again, unchanged, while ``resend_on`` says its failure may pass;
        any other refusal is raised. Only for requests the server applies once however
        often they come, or whose repeat the caller recognises. ``trying`` hears each
        attempt, ``waiting`` why the next one has to wait."""
        attempt = 0
        while True:
            trying()
            try:
                answer = await send()
            except ApiError as exc:
                if not resend_on(exc):
                    raise
                self.report(exc)
                waiting(describe(exc))
                await self.retry_pause(self.retry_delay(attempt))
                attempt += 1
                continue
            self.answered()
            return answer
