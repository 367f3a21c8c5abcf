"""The ops feed (``/ws/ops``): a websocket that reconnects by itself.

Every connection starts with a full ``OpsSnapshot``, then ``OpsChanges``; so after any
drop the view is rebuilt from a fresh snapshot, never patched across a gap. The feed is
*up* once that snapshot has arrived and *down* from the moment the socket is lost until
the next one has; between attempts it waits with exponential back-off (the reconnecting
loop the apps share, ``qc_tui.push.ReconnectingSocket``). A close with
4401 (bad or expired token) or 4403 (not this manager's city) is final: retrying would
only be refused again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from control_tower.state import FeedFormatError, FeedPayload, error_detail, parse_message
from qc_tui.push import ReconnectingSocket
from shared.schemas.ops import OpsSnapshot

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
FINAL_CLOSE_CODES = frozenset({CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN})
HTTP_REFUSALS = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_FORBIDDEN}


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 15.0) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 = the first retry)."""
    return min(cap, base * 2 ** min(attempt, 30))


class FeedRefused(Exception):
    """The server closed the feed for good (``code`` 4401 or 4403)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class OpsFeed(ReconnectingSocket):
    """``url()`` gives the socket URL for each attempt (None: not logged in, wait);
    ``on_message`` gets every snapshot and changes message; ``on_state(up, detail)``
    reports the feed coming up (after its snapshot) and going down (with why)."""

    def __init__(
        self,
        url: Callable[[], str | None],
        *,
        on_message: Callable[[FeedPayload], None],
        on_state: Callable[[bool, str], None] = lambda _up, _detail: None,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        super().__init__(
            # the schedule reaches its cap long before the doubling stops
            retry_delays=[backoff_delay(n, base=base_delay, cap=max_delay) for n in range(31)],
            open_timeout=open_timeout,
            ping_interval=ping_interval,
        )
        self._url = url
        self._on_message = on_message
        self._on_state = on_state
        self.up = False
        self.connections = 0  # sockets opened (each began with a snapshot)
        self.last_error = ""  # the detail of the server's last error frame

    async def attempt(self) -> bool:
        """One connection, if there is a URL; refused for good raises :class:`FeedRefused`,
        which ends ``run``."""
        url = self._url()
        if url is None:
            return False
        try:
            return await self._attempt(url)
        except FeedRefused:
            self._set_state(False, "refused")
            raise

    async def _attempt(self, url: str) -> bool:
        """One connection, until it ends; True if it delivered a snapshot. Reports the
        feed down when it ends, raises :class:`FeedRefused` when that is final."""
        code: int | None = None
        reason = ""
        up = False
        self.last_error = ""
        try:
            # a whole city's snapshot can be large
            async with self.connect(url, max_size=None) as ws:
                self._ws = ws
                try:
                    up = await self._serve(ws)
                finally:
                    self._ws = None
                code, reason = ws.close_code, ws.close_reason or ""
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in HTTP_REFUSALS:
                raise FeedRefused(HTTP_REFUSALS[status], f"HTTP {status}") from exc
            self._set_state(False, f"server answered HTTP {status}")
            return False
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self._set_state(False, _short(exc))
            return False
        except FeedFormatError as exc:
            log.warning("ops feed: unreadable message, reconnecting: %s", exc)
            self._set_state(False, "unreadable message from the server")
            return up
        if code in FINAL_CLOSE_CODES:
            default = "unauthorized" if code == CLOSE_UNAUTHORIZED else "forbidden"
            raise FeedRefused(code, reason or self.last_error or default)
        detail = f"closed by the server ({code}{' ' + reason if reason else ''})" if code else ""
        self._set_state(False, detail or "connection dropped")
        return up

    async def _serve(self, ws: ClientConnection) -> bool:
        """Read until the socket closes; True if a snapshot came (the feed was up)."""
        got_snapshot = False
        async for raw in ws:
            refusal = error_detail(raw)
            if refusal is not None:
                self.last_error = refusal  # the server says why before it closes
                continue
            payload = parse_message(raw)
            if payload is None:
                continue  # a ping, or a message type this version does not know
            if isinstance(payload, OpsSnapshot):
                got_snapshot = True
                self.connections += 1
                self._on_message(payload)
                self._set_state(True, "")
            elif got_snapshot:
                self._on_message(payload)
        return got_snapshot

    def _set_state(self, up: bool, detail: str) -> None:
        self.up = up
        self._on_state(up, detail)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "…"
