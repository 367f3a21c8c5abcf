"""The rider handheld: log in, start a shift, take offers, pick the bags up, hand them over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.reactive import reactive

from rider_app.api import DEFAULT_SERVER, RETRY_DELAYS, RiderApi, is_transient
from rider_app.clock import ServerTime, utc_now
from rider_app.gps import FixPusher, GpsSource, OfflineBuffer
from rider_app.gps.fix import Fix
from rider_app.link import LinkDown, RiderLink
from rider_app.messages import ServerPushed, TripUpdated
from rider_app.screens.login import LoginScreen
from rider_app.screens.shift import ShiftScreen
from rider_app.screens.trip import TripScreen
from rider_app.tracking import (
    DEFAULT_BUFFER_DIR,
    buffer_path,
    remember_duty,
    remembered_duty,
    to_gps_fixes,
)
from shared.aio import wait_event
from shared.client import ApiError, ConnectionLost, QcClient
from shared.geo import LatLng
from shared.schemas import RiderPublic, TripPublic

log = logging.getLogger(__name__)

ACTIVE_TRIP = ("OFFERED", "ACCEPTED", "AT_STORE", "PICKED_UP", "OUT")


class FixesNotSent(ConnectionError):
    """The batch did not reach the server (or not now): the buffer keeps it."""


class RiderApp(App[None]):
    CSS_PATH = "rider.tcss"
    TITLE = "qc rider"
    ENABLE_COMMAND_PALETTE = False

    online: reactive[bool] = reactive(True)  # the API answers
    socket_up: reactive[bool] = reactive(False)  # the rider socket is open
    on_duty: reactive[bool] = reactive(False)
    rider_status: reactive[str] = reactive("")
    buffered_fixes: reactive[int] = reactive(0)  # fixes kept on disk, not yet on the server
    last_fix: reactive[Fix | None] = reactive(None)
    gps_state: reactive[str] = reactive("no GPS source (start with --gps)")

    def __init__(
        self,
        *,
        server_url: str = DEFAULT_SERVER,
        login: str | None = None,
        gps: GpsSource | None = None,
        client: RiderApi | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        buffer_dir: Path = DEFAULT_BUFFER_DIR,
        push_interval_s: float = 5.0,
        trip_poll_s: float = 5.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        socket: bool = True,
    ) -> None:
        super().__init__()
        self.client: RiderApi = client if client is not None else QcClient(server_url)
        self.login_hint = login
        self.gps_source = gps
        self.clock = clock  # ages of local things; tests and snapshots fix it
        # key timing for the keyboard-wedge detector, and how old a trip answer is
        self.monotonic = monotonic
        self.buffer_dir = buffer_dir
        self.push_interval_s = push_interval_s
        self.trip_poll_s = trip_poll_s
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.use_socket = socket
        self.rider: RiderPublic | None = None
        self.trip: TripPublic | None = None  # the active trip, if any
        self.server_time: ServerTime | None = None  # from the last trip answer
        self.buffer: OfflineBuffer | None = None
        self.pusher: FixPusher | None = None
        self.link: RiderLink | None = None
        self.last_push_at: datetime | None = None  # when the server last took a fix
        self.dropped_fixes = 0  # refused by the server for good (invalid)
        self.connection_detail = ""
        self.server_events: list[dict[str, Any]] = []  # pushes received, newest last
        self._trip_gen = 0  # bumped by every answer to the rider's own steps
        self._poll_timer: Any = None
        self._retry_now = asyncio.Event()  # the server answered again: stop waiting
        self._socket_refusal_told = False

    # --- start-up -------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.client.user is not None and self.client.token:
            self.logged_in()
        else:
            self.push_screen(LoginScreen())

    async def on_unmount(self) -> None:
        if self.gps_source is not None:
            with contextlib.suppress(Exception):
                await self.gps_source.close()
        if self.link is not None:
            with contextlib.suppress(Exception):
                await self.link.close()
        await self.client.aclose()

    def logged_in(self) -> None:
        """Open this rider's offline buffer, start GPS, the socket and the trip poll."""
        user = self.client.user
        assert user is not None
        self.buffer_dir.mkdir(parents=True, exist_ok=True)
        self.buffer = OfflineBuffer(buffer_path(self.buffer_dir, user.login))
        self.buffered_fixes = len(self.buffer)
        self.on_duty = remembered_duty(self.buffer_dir, user.login)  # until the server says
        self.pusher = FixPusher(
            self._send_fix,
            self._send_batch,
            self.buffer,
            interval_s=self.push_interval_s,
        )
        if isinstance(self.screen, LoginScreen):
            self.switch_screen(ShiftScreen())
        else:
            self.push_screen(ShiftScreen())
        if self.gps_source is not None:
            self.read_gps(self.gps_source)
        if self.use_socket:
            self.link = RiderLink(
                self.client.base_url,
                lambda: self.client.token,
                on_event=self._socket_event,
                on_state=self._socket_state,
                on_auth_error=self._socket_refused,
                retry_delays=self.retry_delays,
            )
            self.run_socket(self.link)
        self.push_loop()
        self.refresh_rider()
        self.poll_trip()

    def position(self) -> LatLng | None:
        """Where the rider is: the latest GPS fix, else the server's last known position."""
        if self.last_fix is not None:
            return self.last_fix.position
        rider = self.rider
        if rider is not None and rider.lat is not None and rider.lng is not None:
            return LatLng(rider.lat, rider.lng)
        return None

    def retry_delay(self, attempt: int) -> float:
        return self.retry_delays[min(attempt, len(self.retry_delays) - 1)]

    # --- the rider ------------------------------------------------------------------
    def rider_changed(self, rider: RiderPublic) -> None:
        was_on = self.on_duty
        self.rider = rider
        self.rider_status = rider.status
        self.on_duty = rider.on_duty
        if self.client.user is not None and rider.on_duty != was_on:
            with contextlib.suppress(OSError):
                remember_duty(self.buffer_dir, self.client.user.login, rider.on_duty)
        if rider.on_duty and not was_on:
            self.push_now()  # dispatch needs to know where the rider is, now
        if self.trip is not None and self.last_fix is None:
            self._broadcast_trip(self.trip)  # distances from the server's last position

    @work(exclusive=True, group="rider")
    async def refresh_rider(self) -> None:
        try:
            rider = await self.client.rider_me()
        except ApiError as exc:
            if isinstance(exc, ConnectionLost):
                self.report_offline(exc)
            return
        self.report_online()
        self.rider_changed(rider)

    # --- the trip -------------------------------------------------------------------
    def _stop_polling(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None

    @work(exclusive=True, group="trip-poll")
    async def poll_trip(self) -> None:
        """Ask for the current trip; the next poll is scheduled only when this one is done.
        A push on the socket (``delivery.offered``...) polls at once."""
        self._stop_polling()
        generation = self._trip_gen
        delay = self.trip_poll_s
        try:
            trip = await self.client.my_trip()
        except ApiError as exc:
            if isinstance(exc, ConnectionLost):
                self.report_offline(exc)
                delay = min(delay, self.retry_delay(0))
            elif exc.status == 401:
                self.notify("Session expired: log in again", severity="error", timeout=30)
        except ValueError:  # an answer this version cannot read: keep the last view
            log.exception("unreadable trip answer")
        else:
            self.report_online()
            if generation == self._trip_gen:  # no newer answer from a step of our own
                self.apply_trip(trip)
        self._poll_timer = self.set_timer(delay, self.poll_trip)

    def trip_answered(self, trip: TripPublic) -> None:
        """The answer to one of the rider's own steps: newer than any poll in flight."""
        self._trip_gen += 1
        self.apply_trip(trip)

    def server_now(self) -> datetime:
        """The server's now, for its deadlines; an older server that does not say falls
        back to this handheld's clock."""
        if self.server_time is None:
            return self.clock()
        return self.server_time.now(self.monotonic())

    def apply_trip(self, trip: TripPublic | None) -> None:
        previous = self.trip
        if trip is not None and trip.server_now is not None:
            self.server_time = ServerTime(trip.server_now, trip.clock_speed, self.monotonic())
        active = trip if trip is not None and trip.status in ACTIVE_TRIP else None
        self.trip = active
        if active is None:
            if previous is not None:
                self.close_trip()
                if trip is not None and trip.status == "COMPLETED":
                    done = sum(1 for s in trip.stops if s.status == "DELIVERED")
                    self.notify(f"Trip complete ✔ {done}/{len(trip.stops)} delivered")
                elif trip is not None and trip.status == "CANCELLED":
                    what = "offer" if previous.status == "OFFERED" else "trip"
                    self.notify(f"The {what} went back to dispatch")
                elif previous.status == "OFFERED":
                    self.notify("The offer ran out: it went to another rider", severity="warning")
                else:
                    self.notify("Dispatch took the trip back", severity="warning")
                self.refresh_rider()
            return
        if previous is None or previous.trip_id != active.trip_id:
            self.close_trip()
            if active.status == "OFFERED":
                self.bell()
            self.push_screen(TripScreen())
            return
        if active != previous:
            self._broadcast_trip(active)

    def _broadcast_trip(self, trip: TripPublic) -> None:
        for screen in self.screen_stack:
            screen.post_message(TripUpdated(trip))

    def close_trip(self) -> None:
        """Back to the shift screen, closing the trip's screens and dialogs."""
        stack = self.screen_stack
        keep = next((i for i, s in enumerate(stack) if isinstance(s, ShiftScreen)), None)
        if keep is None:
            return
        for _ in range(len(stack) - keep - 1):
            self.pop_screen()

    def on_server_pushed(self, message: ServerPushed) -> None:
        self.server_events.append(message.event)
        if str(message.event.get("type", "")).startswith("delivery."):
            self.poll_trip()

    # --- connection -----------------------------------------------------------------
    def report_offline(self, exc: ApiError) -> None:
        self.connection_detail = exc.detail
        if self.online:
            self.online = False
            self.probe_connection()

    def report_online(self) -> None:
        if not self.online:
            self.online = True
            self.connection_detail = ""
            if self.link is not None:
                self.link.reconnect_now()
            if self.on_duty:
                self.flush_fixes()
            self.refresh_rider()
            self.poll_trip()
        self._retry_now.set()

    @work(exclusive=True, group="probe")
    async def probe_connection(self) -> None:
        """While the server is unreachable, knock on /healthz with growing pauses."""
        attempt = 0
        while not self.online:
            await self.retry_pause(self.retry_delay(attempt))
            attempt += 1
            with contextlib.suppress(ConnectionLost):
                await self.client.health()
                self.report_online()

    async def retry_pause(self, seconds: float) -> None:
        """A retry pause that ends early when the server is seen answering again."""
        self._retry_now.clear()
        await wait_event(self._retry_now, seconds)

    # --- socket ---------------------------------------------------------------------
    @work(exclusive=True, group="socket")
    async def run_socket(self, link: RiderLink) -> None:
        await link.run()

    def _socket_state(self, up: bool) -> None:
        self.socket_up = up
        if up and self.on_duty:
            self.flush_fixes()  # replay what was kept while away, in order

    def _socket_event(self, event: dict[str, Any]) -> None:
        self.post_message(ServerPushed(event))

    def _socket_refused(self, detail: str) -> None:
        if not self._socket_refusal_told:  # it is retried every few seconds: say it once
            self._socket_refusal_told = True
            self.notify(f"The server refused the rider socket: {detail}", severity="error")

    # --- GPS ------------------------------------------------------------------------
    @work(exclusive=True, group="gps")
    async def read_gps(self, source: GpsSource) -> None:
        """Follow the receiver; the pusher samples the newest fix every interval."""
        self.gps_state = "waiting for a fix"
        try:
            async for fix in source.fixes():
                self.last_fix = fix
                self.gps_state = fix.source
                if self.pusher is not None:
                    self.pusher.offer(fix)
        except Exception as exc:
            log.exception("GPS source failed")
            self.gps_state = f"GPS failed: {exc}"
            return
        finally:
            with contextlib.suppress(Exception):
                await source.close()
        self.gps_state = "GPS source ended"

    @work(exclusive=True, group="push")
    async def push_loop(self) -> None:
        """Every ``push_interval_s`` on duty: the newest fix over the socket, or kept on
        disk and replayed in order (batch endpoint) once the server is reachable."""
        next_at = time.monotonic() + self.push_interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self.on_duty:
                await self.push_once()
            next_at = max(next_at + self.push_interval_s, time.monotonic())

    @work(group="push-now")
    async def push_now(self) -> None:
        await self.push_once()

    @work(group="push-now")
    async def flush_fixes(self) -> None:
        if self.pusher is None:
            return
        try:
            await self.pusher.flush()
        except Exception:
            log.exception("replaying kept fixes failed")
        self._after_push()

    async def push_once(self) -> None:
        if self.pusher is None:
            return
        try:
            await self.pusher.tick()
        except Exception:
            log.exception("pushing a fix failed")
        self._after_push()

    def _after_push(self) -> None:
        if self.buffer is not None:
            self.buffered_fixes = len(self.buffer)

    async def _send_fix(self, fix: Fix) -> None:
        if self.link is None:
            raise LinkDown("no rider socket")
        await self.link.send_fix(fix)
        self.last_push_at = self.clock()

    async def _send_batch(self, fixes: Sequence[Fix]) -> None:
        """The pusher's replay: the batch endpoint, in order, duplicates ignored by the
        server. Anything that may work later keeps the batch; a final refusal drops it.
        The server applies a batch's usable fixes and lists the ones it can never take
        (older than a day, from the future): those are dropped too."""
        try:
            result = await self.client.post_locations(to_gps_fixes(fixes))
        except ApiError as exc:
            self._batch_failed(exc)
            self._refused(fixes, exc)  # final, and none of them was usable
            return
        if result.refused:
            self.dropped_fixes += len(result.refused)
            log.warning(
                "the server refused %d kept fix(es) for good: %s",
                len(result.refused),
                ", ".join(sorted({r.code for r in result.refused})),
            )
        self.last_push_at = self.clock()
        self.report_online()

    def _batch_failed(self, exc: ApiError) -> None:
        """Raise ``FixesNotSent`` (keep the fixes) unless the refusal is final."""
        if isinstance(exc, ConnectionLost):
            self.report_offline(exc)
        if is_transient(exc) or exc.code == "off_duty":
            raise FixesNotSent(exc.detail) from exc

    def _refused(self, fixes: Sequence[Fix], exc: ApiError) -> None:
        self.dropped_fixes += len(fixes)
        log.warning("the server refused %d kept fix(es) for good: %s", len(fixes), exc)
