"""One drop: ride there, ask for the customer's OTP, hand over; or report it failed."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from qc_tui.clock import mmss
from qc_tui.feedback import ResultPanel
from rider_app.context import RiderContext
from rider_app.formats import distance, masked_phone
from rider_app.messages import PollAsked, TripAnswered, TripUpdated
from rider_app.route import plan
from rider_app.screens.dialogs import CallScreen, FailReasonScreen
from rider_app.widgets.gps_status import GpsStatus
from shared.client import ApiError
from shared.schemas.delivery import TripPublic, TripStopPublic


class OtpInput(Input):
    """The OTP field: it takes digits only, so letters stay the screen's keys (f, c)."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return character is not None and character.isdigit()


class DropScreen(Screen[None]):
    BINDINGS = [
        Binding("ctrl+f,f", "fail", "Failed delivery", priority=True),
        Binding("c", "call", "Call the customer", priority=True),
        Binding("escape", "back", "Back to the trip", priority=True),
    ]

    def __init__(self, ctx: RiderContext, trip: TripPublic, stop: TripStopPublic) -> None:
        super().__init__()
        self.ctx = ctx
        self.trip = trip
        self.stop = stop
        self.order_id = str(stop.order_id)
        self.tries_left: int | None = None
        self.locked = False
        self.sending = False
        self.delivered = False
        self._lost = False  # an attempt went unanswered: the next may find it done

    def compose(self) -> ComposeResult:
        stop = self.stop
        yield Static(
            f"Drop {stop.seq} of {len(self.trip.stops)} · order {self.order_id[:8]}",
            classes="title",
        )
        yield ConnectionBanner()
        yield Static(stop.address or f"{stop.lat:.5f}, {stop.lng:.5f}", id="drop-address")
        yield Static(self._notes(), id="drop-notes")
        yield Static(id="drop-info")
        yield Label("Customer's OTP (4 digits)")
        yield OtpInput(id="otp", placeholder="____", type="integer", max_length=4)
        yield ResultPanel("Ask the customer for the code in their app", id="drop-result")
        yield GpsStatus(self.ctx, id="gps")
        yield Footer()

    def _notes(self) -> str:
        stop = self.stop
        notes = [f"Landmark: {stop.landmark}"] if stop.landmark else []
        notes.append(f"Notes: {stop.instructions or '—'}")
        notes.append(f"Customer: {masked_phone(stop.customer_phone)} (c: call)")
        return "\n".join(notes)

    def on_mount(self) -> None:
        self._info()
        self.set_interval(1.0, self._info)
        self.query_one(Input).focus()

    def on_trip_updated(self, message: TripUpdated) -> None:
        self.trip = message.trip
        fresh = next((s for s in message.trip.stops if str(s.order_id) == self.order_id), None)
        if fresh is not None:
            self.stop = fresh
            self.query_one("#drop-notes", Static).update(self._notes())
        self._info()

    def _info(self) -> None:
        leg = plan(self.trip, self.ctx.live.position()).drops.get(self.order_id)
        parts = []
        if leg is not None:
            parts.append(f"{distance(leg.distance_m)} away")
        if self.stop.status == "ARRIVED":
            parts.append("you are at the door")
        if self.stop.sla_deadline is not None:
            left = (self.stop.sla_deadline - self.ctx.clock.now()).total_seconds()
            parts.append(f"SLA {mmss(left)}" if left >= 0 else f"SLA LATE {mmss(-left)}")
        self.query_one("#drop-info", Static).update(" · ".join(parts))

    def result(self, text: str, kind: str = "info") -> None:
        self.query_one("#drop-result", ResultPanel).say(text, kind)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        otp = event.value.strip()
        if self.locked:
            self.result("The OTP is locked — call support, or F: failed delivery", "error")
            return
        if len(otp) != 4 or not otp.isdigit():
            self.result("The OTP has 4 digits", "error")
            return
        if not self.sending:
            self.sending = True
            self.deliver(otp)

    @work(exclusive=True, group="deliver")
    async def deliver(self, otp: str) -> None:
        """Retries by itself while the server is unreachable; after a lost answer a
        ``stop_closed`` refusal means the first try went through."""
        client = self.ctx.client
        self._lost = False
        try:
            result = await self.ctx.connection.send_until_answered(
                lambda: client.deliver(self.trip.trip_id, self.order_id, otp=otp),
                trying=lambda: self.result("Checking the OTP…"),
                waiting=self._waiting,
            )
        except ApiError as exc:
            if self._lost and exc.code == "stop_closed":
                self.delivered = True
                self.app.notify(f"Order {self.order_id[:8]} delivered ✔")
                self.app.post_message(PollAsked())
                self._leave()
                return
            self._refused(exc)
            return
        finally:
            self.sending = False
        self.delivered = True
        self.app.notify(f"Order {self.order_id[:8]} delivered ✔")
        self._leave()
        self.app.post_message(TripAnswered(result))

    def _waiting(self, _why: str) -> None:
        self._lost = True
        self.result("Connection lost — retrying…", "error")

    def _leave(self) -> None:
        if self.is_current:
            self.app.pop_screen()

    def _refused(self, exc: ApiError) -> None:
        self.app.bell()
        otp = self.query_one(Input)
        otp.clear()
        if exc.code == "wrong_otp":
            self.tries_left = int(exc.problem.get("tries_left", 0))
            tries = f"{self.tries_left} tr{'ies' if self.tries_left != 1 else 'y'} left"
            self.result(
                f"WRONG OTP — {tries}. Ask the customer again. Ctrl+F: failed delivery", "error"
            )
            otp.focus()
        elif exc.code == "otp_locked":
            self.locked, self.tries_left = True, 0
            otp.disabled = True
            self.result(
                "OTP LOCKED after 3 wrong tries — call support. F: failed delivery", "error"
            )
        else:
            self.result(f"Not delivered: {describe(exc)}", "error")
            otp.focus()

    def action_call(self) -> None:
        if self.stop.customer_phone:
            self.app.push_screen(CallScreen(self.stop.customer_phone))
        else:
            self.result("No number for this customer (or the drop is closed)", "error")

    def action_fail(self) -> None:
        if not self.sending and not self.delivered:
            self.app.push_screen(FailReasonScreen(), self._fail_chosen)

    def _fail_chosen(self, reason: str | None) -> None:
        if reason:
            self.sending = True
            self.fail(reason)

    @work(exclusive=True, group="deliver")
    async def fail(self, reason: str) -> None:
        connection = self.ctx.connection
        try:
            self.result("Reporting the failed delivery…")
            try:
                result = await self.ctx.client.fail_drop(
                    self.trip.trip_id, self.order_id, reason=reason
                )
            except ApiError as exc:
                connection.report(exc)
                self.result(f"Not reported: {describe(exc)} — F: try again", "error")
                return
        finally:
            self.sending = False
        connection.answered()
        self.app.notify(f"Order {self.order_id[:8]}: failed delivery reported ({reason})")
        self._leave()
        self.app.post_message(TripAnswered(result))

    def action_back(self) -> None:
        if not self.sending:
            self.app.pop_screen()
