"""The current assignment: the store, the drops in route order with distance, ETA and a live
SLA countdown, and the one next step (accept/reject, at the store, pickup, depart, drop).
Before pickup the trip can be given back, with a reason; v shows the route as a map."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from qc_tui.clock import mmss, sla_text
from qc_tui.dialogs import ConfirmScreen
from rider_app.context import RiderContext
from rider_app.formats import distance, minutes
from rider_app.messages import PollAsked, TripAnswered, TripUpdated
from rider_app.route import Leg, RoutePlan, next_stop, plan
from rider_app.screens.dialogs import ReleaseReasonScreen
from rider_app.screens.drop import DropScreen
from rider_app.screens.pickup import PickupScreen
from rider_app.screens.route import RouteScreen
from rider_app.widgets.gps_status import GpsStatus
from shared.client import ApiError
from shared.schemas.delivery import TripPublic, TripStopPublic

STATUS_TITLE = {
    "OFFERED": "NEW OFFER",
    "ACCEPTED": "to the store",
    "AT_STORE": "at the store",
    "PICKED_UP": "bags on board",
    "OUT": "delivering",
}
STEP_BUSY = {
    "accept": "Accepting…",
    "reject": "Rejecting…",
    "arrived": "Telling the store you are here…",
    "depart": "Departing…",
    "release": "Giving the trip back…",
}
STEP_DONE = {
    "accept": "Accepted ✔ — ride to the store",
    "reject": "Rejected",
    "arrived": "At the store ✔ — collect the bags",
    "depart": "Departed ✔ — ride to the first drop",
    "release": "Given back ✔ — the orders go back to dispatch",
}
# which keys work in which trip state (the footer shows only those)
ALLOWED = {
    "accept": ("OFFERED",),
    "reject": ("OFFERED",),
    "arrived": ("ACCEPTED",),
    "pickup": ("ACCEPTED", "AT_STORE"),
    "depart": ("PICKED_UP",),
    "drop": ("OUT",),
    "release": ("ACCEPTED", "AT_STORE"),  # before pickup: the bags are not with the rider
}
STOP_MARK = {"DELIVERED": "✔ delivered", "FAILED": "✘ failed", "ARRIVED": "at the door"}


class TripScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "next_step", "Next step", priority=True),
        Binding("a", "accept", "Accept"),
        Binding("x", "reject", "Reject"),
        Binding("t", "arrived", "At store"),
        Binding("p", "pickup", "Scan bags"),
        Binding("d", "depart", "Depart"),
        Binding("o", "drop", "Hand over (OTP)"),
        Binding("g", "release", "Give back"),
        Binding("v", "route", "Route"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "home", "Shift"),
    ]

    def __init__(self, ctx: RiderContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.trip: TripPublic | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Static(id="trip-title", classes="title")
        yield ConnectionBanner()
        yield Static(id="store")
        yield Static("Drops in route order", classes="section")
        yield DataTable(id="drops", cursor_type="none", zebra_stripes=True)
        yield Static(id="route-total", classes="muted")
        yield Static(id="next-step")
        yield Static("", id="trip-status")
        yield GpsStatus(self.ctx, id="gps")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("#", key="seq", width=2)
        table.add_column("Order", key="order", width=8)
        table.add_column("Address", key="address", width=26)
        table.add_column("Leg", key="leg", width=7)
        table.add_column("ETA", key="eta", width=7)
        table.add_column("SLA", key="sla", width=10)
        table.add_column("Status", key="status", width=12)
        self.show_trip(self.ctx.live.trip)
        self.set_interval(1.0, self._tick)
        self.watch(self.app, "last_fix", self._moved, init=False)

    def on_trip_updated(self, message: TripUpdated) -> None:
        self.show_trip(message.trip)

    def on_screen_resume(self, _event: events.ScreenResume) -> None:
        self.show_trip(self.ctx.live.trip)

    def _moved(self, _fix: object) -> None:
        self.show_trip(self.trip)

    # --- showing the trip -----------------------------------------------------------
    def show_trip(self, trip: TripPublic | None) -> None:
        if trip is None:
            return
        changed = self.trip is None or self.trip.status != trip.status
        self.trip = trip
        route = plan(trip, self.ctx.live.position())
        stops = sorted(trip.stops, key=lambda s: s.seq)
        title = STATUS_TITLE.get(trip.status, trip.status.lower())
        self.query_one("#trip-title", Static).update(
            f"Trip {str(trip.trip_id)[:8]} · {title} · {len(stops)} drop{'s' * (len(stops) != 1)}"
        )
        self.query_one("#store", Static).update(self._store_text(trip, route))
        table = self.query_one(DataTable)
        table.clear()
        for stop in stops:
            oid = str(stop.order_id)
            leg = route.drops.get(oid)
            table.add_row(
                str(stop.seq),
                oid[:8],
                (stop.address or f"{stop.lat:.4f}, {stop.lng:.4f}")[:26],
                distance(leg.distance_m) if leg else "—",
                self._eta(self._eta_s(stop, leg)),
                self._sla(stop.status, stop.sla_deadline),
                STOP_MARK.get(stop.status, stop.status.lower()),
                key=oid,
            )
        total = route.total_m
        last = [s for s in stops if str(s.order_id) in route.drops][-1:]
        finish = self._eta_s(last[0], route.drops[str(last[0].order_id)]) if last else None
        self.query_one("#route-total", Static).update(
            f"Route {distance(total)}"
            + (f" · all done in {minutes(finish)}" if finish is not None else "")
        )
        self._show_next_step(trip, route)
        if changed:
            self.refresh_bindings()

    def _store_text(self, trip: TripPublic, route: RoutePlan) -> str:
        if route.store is None:
            return f"Store {trip.store_id} · bags on board"
        if trip.status == "AT_STORE":
            return f"Store {trip.store_id} · you are here"
        leg = route.store
        eta = f" · ETA {minutes(leg.eta_s)}" if leg.eta_s is not None else ""
        return f"Store {trip.store_id} · pick up · {distance(leg.distance_m)} away{eta}"

    @staticmethod
    def _eta(seconds: float | None) -> str:
        return "—" if seconds is None else minutes(seconds)

    def _eta_s(self, stop: TripStopPublic, leg: Leg | None) -> float | None:
        """Seconds to the door: the server's ETA (the one the customer sees) when the trip
        carries it, else this handheld's estimate from its own position."""
        if stop.eta_at is not None:
            return max(0.0, (stop.eta_at - self.ctx.clock.now()).total_seconds())
        return leg.eta_s if leg else None

    def _sla(self, status: str, deadline: datetime | None) -> Text:
        if status in ("DELIVERED", "FAILED") or deadline is None:
            return Text("—")
        return sla_text((deadline - self.ctx.clock.now()).total_seconds())

    def _show_next_step(self, trip: TripPublic, route: RoutePlan) -> None:
        panel = self.query_one("#next-step", Static)
        panel.set_class(trip.status == "OFFERED", "-offer")
        stop = next_stop(trip)
        n = len(trip.stops)
        if trip.status == "OFFERED":
            text = (
                f"NEW OFFER: {n} drop{'s' * (n != 1)} from {trip.store_id}, "
                f"{distance(route.total_m)} in all. {self._answer_within()}\n"
                "A or Enter: accept · X: reject"
            )
        elif trip.status == "ACCEPTED":
            text = (
                f"Ride to {trip.store_id}.\n"
                "T or Enter: at the store · P: scan the bags · G: give back"
            )
        elif trip.status == "AT_STORE":
            text = (
                f"At {trip.store_id}: collect {n} bag{'s' * (n != 1)}.\n"
                "P or Enter: scan the bag labels · G: give back"
            )
        elif trip.status == "PICKED_UP":
            text = "All bags on board.\nD or Enter: depart"
        elif trip.status == "OUT" and stop is not None:
            leg = route.drops.get(str(stop.order_id))
            where = stop.address or f"{stop.lat:.5f}, {stop.lng:.5f}"
            away = f" · {distance(leg.distance_m)}" if leg is not None else ""
            text = f"Drop {stop.seq}: {where}{away}\nO or Enter: hand over with the customer's OTP"
        else:
            text = "All drops done."
        panel.update(text)

    def _answer_within(self) -> str:
        """The server's deadline for the offer, on the server's clock."""
        trip = self.trip
        if trip is None or trip.offer_expires_at is None:
            return ""  # an older server does not say
        left = (trip.offer_expires_at - self.ctx.clock.now()).total_seconds()
        return f"Answer within {mmss(max(0.0, left))}"

    def _tick(self) -> None:
        trip = self.trip
        if trip is None:
            return
        route = plan(trip, self.ctx.live.position())
        if trip.status == "OFFERED":
            self._show_next_step(trip, route)
        table = self.query_one(DataTable)
        for stop in trip.stops:
            oid = str(stop.order_id)
            table.update_cell(oid, "sla", self._sla(stop.status, stop.sla_deadline))
            table.update_cell(oid, "eta", self._eta(self._eta_s(stop, route.drops.get(oid))))

    def status(self, text: str, *, error: bool = False) -> None:
        line = self.query_one("#trip-status", Static)
        line.set_class(error, "-error")
        line.update(text)

    # --- keys -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        states = ALLOWED.get(action)
        if states is None:
            return True
        return self.trip is not None and self.trip.status in states

    def action_next_step(self) -> None:
        status = self.trip.status if self.trip is not None else None
        match status:
            case "OFFERED":
                self.action_accept()
            case "ACCEPTED":
                self.action_arrived()
            case "AT_STORE":
                self.action_pickup()
            case "PICKED_UP":
                self.action_depart()
            case "OUT":
                self.action_drop()

    def action_accept(self) -> None:
        self._step("accept")

    async def action_reject(self) -> None:
        self.confirm_reject()

    @work(exclusive=True, group="confirm")
    async def confirm_reject(self) -> None:
        yes = await self.app.push_screen_wait(
            ConfirmScreen("Reject this offer?", "It goes to another rider.")
        )
        if yes:
            self._step("reject")

    def action_release(self) -> None:
        if self.trip is not None and self.trip.status in ALLOWED["release"]:
            self.confirm_release()

    @work(exclusive=True, group="confirm")
    async def confirm_release(self) -> None:
        reason = await self.app.push_screen_wait(ReleaseReasonScreen())
        if not reason:
            return
        yes = await self.app.push_screen_wait(
            ConfirmScreen("Give this trip back?", f"{reason}: the orders go to another rider.")
        )
        if yes:
            self._step("release", reason)

    def action_arrived(self) -> None:
        self._step("arrived")

    def action_depart(self) -> None:
        self._step("depart")

    def action_pickup(self) -> None:
        if self.trip is not None and self.trip.status in ALLOWED["pickup"]:
            self.app.push_screen(PickupScreen(self.ctx, self.trip))

    def action_drop(self) -> None:
        trip = self.trip
        stop = next_stop(trip) if trip is not None else None
        if trip is not None and trip.status == "OUT" and stop is not None:
            self.app.push_screen(DropScreen(self.ctx, trip, stop))

    def action_route(self) -> None:
        if self.trip is not None:
            self.app.push_screen(RouteScreen(self.ctx))

    def action_refresh(self) -> None:
        self.post_message(PollAsked())

    def action_home(self) -> None:
        self.app.pop_screen()

    def _step(self, step: str, reason: str = "") -> None:
        trip = self.trip
        if trip is None or trip.status not in ALLOWED[step] or self._busy:
            return
        self._busy = True
        self.run_step(trip, step, reason)

    @work(exclusive=True, group="step")
    async def run_step(self, trip: TripPublic, step: str, reason: str = "") -> None:
        """Retries by itself while the server is unreachable; a step that turns out to
        have been done already (a lost answer, or the store geofence) is not an error."""
        client = self.ctx.client
        try:
            result = await self.ctx.connection.send_until_answered(
                lambda: (
                    client.release_trip(trip.trip_id, reason=reason)
                    if step == "release"
                    else client.trip_step(trip.trip_id, step)
                ),
                trying=lambda: self.status(STEP_BUSY[step]),
                waiting=lambda _why: self.status("Connection lost — retrying…", error=True),
            )
        except ApiError as exc:
            if exc.code == "invalid_trip_state":
                now = exc.problem.get("trip_status", "changed")
                self.status(f"The trip is {now} now", error=True)
                self.post_message(PollAsked())
            else:
                self.status(f"{step.capitalize()} refused: {describe(exc)}", error=True)
            return
        finally:
            self._busy = False
        self.status(STEP_DONE[step])
        self.app.post_message(TripAnswered(result))
