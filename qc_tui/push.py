"""A socket the server pushes work down (``/ws/picker``: the store's queue, new tasks):
connect with the session's token, hand every JSON object to ``on_event``, reconnect with
growing pauses when it drops; for ever (cancel to stop). The terminal still polls, slowly,
as a safety net: a push only makes it ask at once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

log = logging.getLogger(__name__)


def socket_url(base_url: str, path: str, token: str) -> str:
    """``http://host:8000`` + ``/ws/picker`` -> ``ws://host:8000/ws/picker?token=...``."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    full = parts.path.rstrip("/") + path
    return urlunsplit((scheme, parts.netloc, full, f"token={quote(token, safe='')}", ""))


class PushSocket:
    def __init__(
        self,
        base_url: str,
        path: str,
        token: Callable[[], str | None],
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_state: Callable[[bool], None] = lambda _up: None,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
    ) -> None:
        self.base_url = base_url
        self.path = path
        self._token = token
        self._on_event = on_event
        self._on_state = on_state
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.up = False
        self.received = 0

    async def run(self) -> None:
        attempt = 0
        while True:
            token = self._token()
            if token:
                try:
                    async with connect(
                        socket_url(self.base_url, self.path, token),
                        open_timeout=10,
                        ping_interval=20,
                        ping_timeout=20,
                        close_timeout=2,
                    ) as ws:
                        attempt = 0
                        self._state(True)
                        async for raw in ws:
                            try:
                                message = json.loads(raw)
                            except ValueError:
                                continue
                            if isinstance(message, dict):
                                self.received += 1
                                self._on_event(message)
                except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                    log.info("%s: cannot connect (%s)", self.path, exc)
                except ConnectionClosed as exc:
                    log.info("%s closed (%s)", self.path, exc)
                except Exception:  # a terminal keeps trying whatever went wrong
                    log.exception("%s failed", self.path)
                finally:
                    self._state(False)
            await asyncio.sleep(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
            attempt += 1

    def _state(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self._on_state(up)
