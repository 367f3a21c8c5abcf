"""The rider socket (``/ws/rider``): fixes out, each acknowledged in order; the server's
pushes (``delivery.offered`` and other trip events) in.

``send_fix`` raises ``LinkDown`` (a ``ConnectionError``, so ``FixPusher`` keeps the fix in
its offline buffer) whenever the fix cannot be confirmed: no socket, a closed socket, or no
acknowledgement within ``ack_timeout``. After a missing acknowledgement the socket is closed
and reopened, so a late ``ack`` can never be paired with the next fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rider_app.gps.fix import Fix
from rider_app.tracking import to_gps_fix
from shared.aio import wait_event

log = logging.getLogger(__name__)


class LinkDown(ConnectionError):
    """The fix was not confirmed by the server; keep it and send it again later."""


class NotOnDuty(LinkDown):
    """The server refused the fix because the rider is off duty: keep it for the next shift."""


def socket_url(base_url: str, token: str) -> str:
    """``http://host:8000`` -> ``ws://host:8000/ws/rider?token=...``."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws/rider"
    return urlunsplit((scheme, parts.netloc, path, f"token={quote(token, safe='')}", ""))


def fix_message(fix: Fix) -> str:
    """The fix as the server's ``GpsFix`` JSON."""
    return to_gps_fix(fix).model_dump_json(exclude_none=True)


class RiderLink:
    def __init__(
        self,
        base_url: str,
        token: Callable[[], str | None],
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_state: Callable[[bool], None] = lambda _up: None,
        on_auth_error: Callable[[str], None] = lambda _detail: None,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
        ack_timeout: float = 10.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self._token = token
        self._on_event = on_event
        self._on_state = on_state
        self._on_auth_error = on_auth_error
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.ack_timeout = ack_timeout
        self.open_timeout = open_timeout
        self.acked = 0  # fixes the server acknowledged over this link
        self.refused = 0  # fixes it refused for good (invalid): not worth resending
        self._ws: ClientConnection | None = None
        self._pending: deque[asyncio.Future[dict[str, Any]]] = deque()
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def reconnect_now(self) -> None:
        """Skip the rest of the current back-off pause (e.g. the server answered again)."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, read until the socket drops, reconnect with growing pauses; for ever
        (cancel to stop)."""
        attempt = 0
        while True:
            token = self._token()
            if token:
                try:
                    async with connect(
                        socket_url(self.base_url, token),
                        open_timeout=self.open_timeout,
                        ping_interval=20,
                        ping_timeout=20,
                        close_timeout=2,
                    ) as ws:
                        attempt = 0
                        await self._serve(ws)
                except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                    log.info("rider socket: cannot connect (%s)", exc)
                except ConnectionClosed as exc:  # a refused session says why first
                    log.info("rider socket closed (%s)", exc)
                except Exception:  # a handheld keeps trying whatever went wrong
                    log.exception("rider socket failed")
            delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
            attempt += 1
            self._wake.clear()
            await wait_event(self._wake, delay)

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._on_state(True)
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        finally:
            self._ws = None
            self._fail_pending(LinkDown("rider socket closed"))
            self._on_state(False)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("ack", "error") and self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_result(message)
            return
        if kind == "error":  # not about a fix: the session was refused
            error = message.get("error") or {}
            self._on_auth_error(str(error.get("detail") or error.get("code") or "refused"))
            return
        self._on_event(message)

    def _fail_pending(self, exc: Exception) -> None:
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning

    async def send_fix(self, fix: Fix) -> None:
        """Deliver one fix and wait for its acknowledgement (the ``FixPusher`` send)."""
        async with self._send_lock:
            ws = self._ws
            if ws is None:
                raise LinkDown("rider socket not connected")
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending.append(future)
            try:
                await ws.send(fix_message(fix))
                answer = await asyncio.wait_for(asyncio.shield(future), self.ack_timeout)
            except ConnectionClosed as exc:
                raise LinkDown(f"rider socket closed: {exc}") from exc
            except TimeoutError as exc:
                await ws.close()  # a late ack must not be paired with the next fix
                raise LinkDown("no acknowledgement from the server") from exc
        if answer.get("type") == "ack":
            self.acked += 1
            return
        error = answer.get("error") or {}
        if error.get("code") == "off_duty":
            raise NotOnDuty(str(error.get("detail") or "off duty"))
        # invalid_fix, fix_in_future...: the server will never take this one; drop it
        self.refused += 1
        log.warning("the server refused a fix for good: %s", error)

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            await ws.close()
