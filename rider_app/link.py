"""The rider socket (``/ws/rider``): fixes out, each acknowledged in order; the server's
pushes (``delivery.offered`` and other trip events) in.

``send_fix`` raises ``LinkDown`` (a ``ConnectionError``, so ``FixPusher`` keeps the fix in
its offline buffer) whenever the fix cannot be confirmed: no socket, a closed socket, or no
acknowledgement within ``ack_timeout``. After a missing acknowledgement the socket is closed
and reopened, so a late ``ack`` can never be paired with the next fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from qc_tui.push import PushSocket
from rider_app.gps.fix import Fix
from rider_app.tracking import to_gps_fix

log = logging.getLogger(__name__)


class LinkDown(ConnectionError):
    """The fix was not confirmed by the server; keep it and send it again later."""


class NotOnDuty(LinkDown):
    """The server refused the fix because the rider is off duty: keep it for the next shift."""


def fix_message(fix: Fix, battery_pct: float | None = None) -> str:
    """The fix as the server's ``GpsFix`` JSON."""
    return to_gps_fix(fix, battery_pct).model_dump_json(exclude_none=True)


class RiderLink(PushSocket):
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
        super().__init__(
            base_url,
            "/ws/rider",
            token,
            on_event=on_event,
            on_state=on_state,
            retry_delays=retry_delays,
            open_timeout=open_timeout,
        )
        self._on_auth_error = on_auth_error
        self.ack_timeout = ack_timeout
        self.acked = 0  # fixes the server acknowledged over this link
        self.refused = 0  # fixes it refused for good (invalid): not worth resending
        self._pending: deque[asyncio.Future[dict[str, Any]]] = deque()
        self._send_lock = asyncio.Lock()

    def handle(self, message: dict[str, Any]) -> None:
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
        super().handle(message)

    def dropped(self) -> None:
        exc = LinkDown("rider socket closed")
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning

    async def send_fix(self, fix: Fix, battery_pct: float | None = None) -> None:
        """Deliver one fix and wait for its acknowledgement (the ``FixPusher`` send)."""
        async with self._send_lock:
            ws = self._ws
            if ws is None:
                raise LinkDown("rider socket not connected")
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending.append(future)
            try:
                await ws.send(fix_message(fix, battery_pct))
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
