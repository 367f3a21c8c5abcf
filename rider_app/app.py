"""The rider handheld: log in, start a shift, take offers, pick the bags up, hand them over."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.reactive import reactive
from textual.timer import Timer

from qc_tui.api import DEFAULT_SERVER, RETRY_DELAYS
from qc_tui.app import ServerApp
from qc_tui.clock import ServerClock, utc_now
from rider_app.api import RiderApi
from rider_app.battery import READ_EVERY_S, BatterySource, HandheldBattery
from rider_app.context import RiderContext
from rider_app.gps import GpsSource, OfflineBuffer
from rider_app.gps.fix import Fix
from rider_app.gps.ride import RideAlong
from rider_app.link import RiderLink
from rider_app.messages import (
    LoggedIn,
    PollAsked,
    RiderAnswered,
    ServerPushed,
    TripAnswered,
    TripUpdated,
)
from rider_app.positions import PositionSender
from rider_app.route import next_stop
from rider_app.screens.login import LoginScreen
from rider_app.screens.shift import ShiftScreen
from rider_app.screens.trip import TripScreen
from rider_app.tracking import DEFAULT_BUFFER_DIR, buffer_path, remember_duty, remembered_duty
from shared.client import ApiError, ConnectionLost, RiderClient
from shared.enums import RiderStatus
from shared.geo import LatLng
from shared.schemas.delivery import RiderPublic, TripPublic

log = logging.getLogger(__name__)

ACTIVE_TRIP = ("OFFERED", "ACCEPTED", "AT_STORE", "PICKED_UP", "OUT")


class RiderApp(ServerApp):
    CSS_PATH = "rider.tcss"
    TITLE = "qc rider"
    ENABLE_COMMAND_PALETTE = False
    KEPT_COUNT = "buffered_fixes"

    socket_up: reactive[bool] = reactive(False)  # the rider socket is open
    on_duty: reactive[bool] = reactive(False)
    rider_status: reactive[str] = reactive("")
    buffered_fixes: reactive[int] = reactive(0)  # fixes kept on disk, not yet on the server
    last_fix: reactive[Fix | None] = reactive(None)
    gps_state: reactive[str] = reactive("no GPS source (start with --gps)")
    battery_pct: reactive[float | None] = reactive(None)  # the last reading, None unknown
    home_store: reactive[str] = reactive("")  # the store the rider works for, by name

    def __init__(
        self,
        *,
        server_url: str = DEFAULT_SERVER,
        login: str | None = None,
        gps: GpsSource | None = None,
        client: RiderApi | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        battery: BatterySource | None = None,
        buffer_dir: Path = DEFAULT_BUFFER_DIR,
        push_interval_s: float = 5.0,
        trip_poll_s: float = 5.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        socket: bool = True,
        ride_along: bool = False,
    ) -> None:
        api: RiderApi = client if client is not None else RiderClient(server_url)
        super().__init__(health=api.health, retry_delays=retry_delays)
        self.client = api
        # no receiver: the handheld rides its own trips (``qc rider`` without --gps)
        self.gps_source = gps if gps is not None or not ride_along else self._ride_along()
        # the handheld's own battery unless given (tests pass a fixed or stepping one)
        self.battery_source = battery if battery is not None else HandheldBattery(monotonic)
        self.buffer_dir = buffer_dir
        self.push_interval_s = push_interval_s
        self.trip_poll_s = trip_poll_s
        self.ctx = RiderContext(
            client=api,
            connection=self.connection,
            # the wall clock dates local things (tests and snapshots fix it); the server's
            # clock comes with every trip answer
            clock=ServerClock(clock, monotonic),
            monotonic=monotonic,
            live=self,
            login_hint=login,
            use_socket=socket,
        )
        self.rider: RiderPublic | None = None
        self.trip: TripPublic | None = None  # the active trip, if any
        self.positions: PositionSender | None = None  # once logged in
        self.link: RiderLink | None = None
        self.server_events: list[dict[str, Any]] = []  # pushes received, newest last
        self._trip_gen = 0  # bumped by every answer to the rider's own steps
        self._poll_timer: Timer | None = None
        self._socket_refusal_told = False

    @property
    def last_push_at(self) -> datetime | None:
        return self.positions.last_push_at if self.positions is not None else None

    @property
    def dropped_fixes(self) -> int:
        return self.positions.dropped_fixes if self.positions is not None else 0

    def kept_note(self) -> str:
        kept = self.buffered_fixes
        if not kept:
            return ""
        return f" · {kept} GPS fix{'es' if kept != 1 else ''} kept, sent in order when back"

    def _ride_along(self) -> RideAlong:
        return RideAlong(self.position, self.ride_goal, speed_factor=lambda: self.ctx.clock.speed)

    def ride_goal(self) -> LatLng | None:
        """Where the trip wants the rider now: the store until the bags are on board, then
        the next open drop; nowhere (stay) without an accepted trip."""
        trip = self.trip
        if trip is None or trip.status == "OFFERED":
            return None
        if trip.status in ("ACCEPTED", "AT_STORE", "PICKED_UP"):
            return LatLng(trip.store_lat, trip.store_lng)
        stop = next_stop(trip)
        return LatLng(stop.lat, stop.lng) if stop is not None else None

    # --- start-up -------------------------------------------------------------------
    def on_mount(self) -> None:
        self.keep_time(self.ctx.clock, getattr(self.client, "server_clock", None))
        if self.client.user is not None and self.client.token:
            self.logged_in()
        else:
            self.push_screen(LoginScreen(self.ctx))

    async def on_unmount(self) -> None:
        if self.gps_source is not None:
            with contextlib.suppress(Exception):
                await self.gps_source.close()
        if self.link is not None:
            with contextlib.suppress(Exception):
                await self.link.close()
        # after the closes above: a trip poll that answered while they ran has scheduled
        # the next one. No push or timer is left to start a call now, and a call in flight
        # ends before the client closes under it (else its worker fails: "the client has
        # been closed")
        self._stop_polling()
        self.workers.cancel_all()
        await self.client.aclose()

    def on_logged_in(self, _message: LoggedIn) -> None:
        self.logged_in()

    def logged_in(self) -> None:
        """Open this rider's offline buffer, start GPS, the socket and the trip poll."""
        user = self.client.user
        assert user is not None
        self.buffer_dir.mkdir(parents=True, exist_ok=True)
        buffer = OfflineBuffer(buffer_path(self.buffer_dir, user.login))
        self.buffered_fixes = len(buffer)
        self.on_duty = remembered_duty(self.buffer_dir, user.login)  # until the server says
        if self.ctx.use_socket:
            self.link = RiderLink(
                self.client.base_url,
                lambda: self.client.token,
                on_event=self._socket_event,
                on_state=self._socket_state,
                on_auth_error=self._socket_refused,
                retry_delays=self.connection.retry_delays,
            )
        self.positions = PositionSender(
            self.client,
            self.connection,
            buffer,
            link=self.link,
            interval_s=self.push_interval_s,
            wall=self.ctx.clock.wall,
            counted=self._kept,
            taken=self._fix_taken,
            battery=self.read_battery,
        )
        if isinstance(self.screen, LoginScreen):
            self.switch_screen(ShiftScreen(self.ctx))
        else:
            self.push_screen(ShiftScreen(self.ctx))
        if self.gps_source is not None:
            self.read_gps(self.gps_source)
        if self.link is not None:
            self.run_socket(self.link)
        self.push_loop()
        self.refresh_rider()
        self.poll_trip()
        self.read_battery()
        self.set_interval(READ_EVERY_S, self.read_battery)  # shown off duty too

    def read_battery(self) -> float | None:
        """The battery now (for a fix going out), kept for the shift screen."""
        self.battery_pct = self.battery_source()
        return self.battery_pct

    def position(self) -> LatLng | None:
        """Where the rider is: the latest GPS fix, else the server's last known position."""
        if self.last_fix is not None:
            return self.last_fix.position
        rider = self.rider
        if rider is not None and rider.lat is not None and rider.lng is not None:
            return LatLng(rider.lat, rider.lng)
        return None

    def reconnected(self) -> None:
        if self.link is not None:
            self.link.reconnect_now()
        if self.on_duty:
            self.flush_fixes()
        self.refresh_rider()
        self.poll_trip()

    # --- the rider ------------------------------------------------------------------
    def on_rider_answered(self, message: RiderAnswered) -> None:
        self.rider_changed(message.rider)

    def rider_changed(self, rider: RiderPublic) -> None:
        was_on = self.on_duty
        self.rider = rider
        self.rider_status = rider.status
        self.on_duty = rider.on_duty
        self.home_store = rider.home_store_name or rider.home_store_id or ""
        if self.client.user is not None and rider.on_duty != was_on:
            with contextlib.suppress(OSError):
                remember_duty(self.buffer_dir, self.client.user.login, rider.on_duty)
        if rider.on_duty and not was_on:
            self.push_now()  # dispatch needs to know where the rider is, now
        if self.trip is not None and self.last_fix is None:
            self._broadcast_trip(self.trip)  # distances from the server's last position

    def _fix_taken(self) -> None:
        """The server took a fix: a rider it had set OFFLINE (no signal) is free for offers
        again, so ask, rather than show OFFLINE until the rider presses r."""
        if self.on_duty and self.rider_status == RiderStatus.OFFLINE:
            self.refresh_rider()

    @work(exclusive=True, group="rider")
    async def refresh_rider(self) -> None:
        try:
            rider = await self.client.rider_me()
        except ApiError as exc:
            self.connection.report(exc)
            return
        self.connection.answered()
        self.rider_changed(rider)

    # --- the trip -------------------------------------------------------------------
    def on_poll_asked(self, message: PollAsked) -> None:
        if message.rider:
            self.refresh_rider()
        if message.trip:
            self.poll_trip()

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
                self.connection.lost(exc)
                delay = min(delay, self.connection.retry_delay(0))
            elif exc.status == 401:
                self.notify("Session expired: log in again", severity="error", timeout=30)
        except ValueError:  # an answer this version cannot read: keep the last view
            log.exception("unreadable trip answer")
        else:
            self.connection.answered()
            if generation == self._trip_gen:  # no newer answer from a step of our own
                self.apply_trip(trip)
        self._poll_timer = self.set_timer(delay, self.poll_trip)

    def on_trip_answered(self, message: TripAnswered) -> None:
        self._trip_gen += 1
        self.apply_trip(message.trip)

    def apply_trip(self, trip: TripPublic | None) -> None:
        previous = self.trip
        if trip is not None and trip.server_now is not None:
            self.ctx.clock.sync(trip.server_now, trip.clock_speed)
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
            self.push_screen(TripScreen(self.ctx))
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
        event = message.event
        self.server_events.append(event)
        if event.get("type") == "rider.move":  # a manager sent the rider to another store
            store = str(event.get("to_store_name") or event.get("to_store") or "another store")
            self.home_store = store
            self.notify(f"You now work for {store}", title="Store changed", timeout=30)
            self.refresh_rider()
        if str(event.get("type", "")).startswith("delivery."):
            self.poll_trip()
            self.refresh_rider()  # a trip's change changes the rider's status too

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
        """Follow the receiver; the sender samples the newest fix every interval."""
        self.gps_state = "waiting for a fix"
        try:
            async for fix in source.fixes():
                self.last_fix = fix
                self.gps_state = fix.source
                if self.positions is not None:
                    # the receiver's time on the server's clock: a server running faster
                    # than the wall would judge wall-clock fixes stale
                    at = self.ctx.clock.of_wall(fix.at)
                    self.positions.offer(dataclasses.replace(fix, at=at))
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
        if self.positions is not None:
            await self.positions.run(lambda: self.on_duty)

    @work(group="push-now")
    async def push_now(self) -> None:
        if self.positions is not None:
            await self.positions.push_once()

    @work(group="push-now")
    async def flush_fixes(self) -> None:
        if self.positions is not None:
            await self.positions.flush()

    def _kept(self, count: int) -> None:
        self.buffered_fixes = count
