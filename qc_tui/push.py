"""The terminals' sockets. ``ReconnectingSocket`` is the loop they all run (connect,
serve until it drops, pause with jittered back-off, again); the control tower's ops feed
builds on it. ``PushSocket`` is a socket the server pushes down (``/ws/picker``,
``/ws/rider``): connect with the session's token, hand every JSON object to ``on_event``,
tell ``on_state`` when it comes up and goes down (the banners show it). The picker's
terminal still polls, slowly, as a safety net: a push only makes it ask at once. The
rider's link sends its fixes over the same socket (a subclass: ``handle`` and ``dropped``
are its hooks)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shared.aio import wait_event

log = logging.getLogger(__name__)

# a server restart drops every terminal's socket at once: each pause is shortened by up to
# this share, at random, so they do not all knock again in the same instant
JITTER = 0.2


def socket_url(base_url: str, path: str, token: str) -> str:
    """``http://host:8000`` + ``/ws/picker`` -> ``ws://host:8000/ws/picker?token=...``."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    full = parts.path.rstrip("/") + path
    return urlunsplit((scheme, parts.netloc, full, f"token={quote(token, safe='')}", ""))


class ReconnectingSocket:
    """What every terminal's socket does around its connections: one at a time until it
    ends, then a pause that grows with each attempt that did not come up (``retry_delays``,
    jittered), then again; for ever (cancel to stop). ``attempt`` is the connection."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
        jitter: float = JITTER,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.jitter = jitter
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def reconnect_now(self) -> None:
        """Skip the rest of the current back-off pause (e.g. the server answered again)."""
        self._wake.set()

    def retry_delay(self, attempt: int) -> float:
        """The pause before reconnect ``attempt`` (0: the first): the schedule's, never longer."""
        delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
        return delay * (1.0 - self.jitter * random.random())

    async def run(self) -> None:
        attempt = 0
        while True:
            if await self.attempt():
                attempt = 0  # it was up: the pauses start over
            delay = self.retry_delay(attempt)
            attempt += 1
            self._wake.clear()
            await wait_event(self._wake, delay)

    async def attempt(self) -> bool:
        """One connection (or none, when there is nothing to connect with yet) until it
        ends; True if it came up."""
        raise NotImplementedError

    def connect(self, url: str, **options: Any) -> connect:
        return connect(
            url,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_interval,
            close_timeout=2,
            **options,
        )

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            await ws.close()


class PushSocket(ReconnectingSocket):
    def __init__(
        self,
        base_url: str,
        path: str,
        token: Callable[[], str | None],
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_state: Callable[[bool], None] = lambda _up: None,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
        jitter: float = JITTER,
        open_timeout: float = 10.0,
    ) -> None:
        super().__init__(retry_delays=retry_delays, jitter=jitter, open_timeout=open_timeout)
        self.base_url = base_url
        self.path = path
        self._token = token
        self._on_event = on_event
        self._on_state = on_state
        self.up = False
        self.received = 0  # JSON objects read over this link

    async def attempt(self) -> bool:
        token = self._token()
        if not token:
            return False
        came_up = False
        try:
            async with self.connect(socket_url(self.base_url, self.path, token)) as ws:
                came_up = True
                await self._serve(ws)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.info("%s: cannot connect (%s)", self.path, exc)
        except ConnectionClosed as exc:  # a refused session says why first
            log.info("%s closed (%s)", self.path, exc)
        except Exception:  # a terminal keeps trying whatever went wrong
            log.exception("%s failed", self.path)
        return came_up

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._state(True)
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self.received += 1
                    self.handle(message)
        finally:
            self._ws = None
            self.dropped()
            self._state(False)

    def handle(self, message: dict[str, Any]) -> None:
        """One JSON object from the server."""
        self._on_event(message)

    def dropped(self) -> None:
        """The socket is gone (before ``on_state`` hears it)."""

    def _state(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self._on_state(up)
