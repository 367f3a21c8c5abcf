"""Home: the shift toggle, the GPS, and waiting for an offer."""

from __future__ import annotations

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from rider_app.battery import LOW_PCT
from rider_app.context import RiderContext
from rider_app.messages import PollAsked, RiderAnswered
from rider_app.screens.trip import TripScreen
from rider_app.widgets.gps_status import GpsStatus
from shared.client import ApiError
from shared.enums import RiderStatus

# what dispatch's status means for the rider, as the shift screen says it
DISPATCH_SEES: dict[str, str] = {
    RiderStatus.IDLE: "free — offers can come",
    RiderStatus.ASSIGNED: "on a trip, heading to the store",
    RiderStatus.AT_STORE: "on a trip, at the store",
    RiderStatus.DELIVERING: "on a trip, delivering",
    RiderStatus.RETURNING: "returning to the store",
}


class ShiftScreen(Screen[None]):
    # one key, labelled with what it does now (check_action shows the one that applies)
    BINDINGS = [
        Binding("s", "start_shift", "Start shift"),
        Binding("s", "end_shift", "End shift"),
        Binding("enter", "open_trip", "Trip", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, ctx: RiderContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._changing = False

    def compose(self) -> ComposeResult:
        user = self.ctx.client.user
        who = f" · {user.name} ({user.login})" if user is not None else ""
        yield Static(f"qc rider{who}", id="shift-title", classes="title")
        yield ConnectionBanner()
        with Vertical(id="shift-box"):
            yield Static(id="duty")
            yield Static(id="rider-status", classes="muted")
            yield Static(id="home-store", classes="muted")
            yield Static(id="battery")
            yield GpsStatus(self.ctx, id="gps")
            yield Static(id="shift-hint")
            yield Static("", id="shift-error")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "on_duty", self._show)
        self.watch(self.app, "rider_status", self._show)
        self.watch(self.app, "home_store", self._show_store)
        self.watch(self.app, "battery_pct", self._show_battery)

    def on_screen_resume(self, _event: events.ScreenResume) -> None:
        self._show()
        self.post_message(PollAsked(rider=True, trip=False))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_shift":
            return not self.ctx.live.on_duty
        if action == "end_shift":
            return self.ctx.live.on_duty
        return True

    def _show(self, _value: object = None) -> None:
        live = self.ctx.live
        # the dispatcher sets an on-duty rider who sent no fix for 2 minutes OFFLINE; the
        # next fix the server takes makes them free for offers again
        lost = live.on_duty and live.rider_status == RiderStatus.OFFLINE
        duty = self.query_one("#duty", Static)
        duty.set_class(live.on_duty and not lost, "-on")
        if lost:
            duty.update("● ON DUTY · no GPS signal at dispatch")
        else:
            duty.update("● ON DUTY" if live.on_duty else "○ OFF DUTY")
        if not live.rider_status:
            status = "…"
        elif lost:
            status = "no position from you — no offers"
        elif not live.on_duty:
            status = "off duty — no offers"
        else:
            status = DISPATCH_SEES.get(live.rider_status, live.rider_status)
        self.query_one("#rider-status", Static).update(f"Dispatch: {status}")
        hint = self.query_one("#shift-hint", Static)
        if lost:
            hint.update(
                "⚠ Dispatch has had no GPS fix from you: no offers come.\n"
                "Check the GPS; offers come again once a fix reaches the server. "
                "S: end the shift"
            )
        elif live.trip is not None:
            hint.update("A trip is open — Enter: show it")
        elif live.on_duty:
            hint.update("Waiting for an offer… it appears here by itself.\nS: end the shift")
        else:
            hint.update("S: start your shift — offers come only on duty")
        self.refresh_bindings()

    def _show_store(self, _value: object = None) -> None:
        store = self.ctx.live.home_store
        self.query_one("#home-store", Static).update(f"Store: {store}" if store else "")

    def _show_battery(self, _value: object = None) -> None:
        pct = self.ctx.live.battery_pct
        battery = self.query_one("#battery", Static)
        low = pct is not None and pct < LOW_PCT
        battery.set_class(low, "-low")
        if pct is None:
            battery.update("")  # no battery on this machine: nothing to say
        elif low:
            battery.update(f"⚠ Battery {pct:.0f} % — charge it: dispatch keeps long trips away")
        else:
            battery.update(f"Battery {pct:.0f} %")

    def _error(self, text: str) -> None:
        self.query_one("#shift-error", Static).update(text)

    def action_start_shift(self) -> None:
        self._change(on_duty=True)

    def action_end_shift(self) -> None:
        self._change(on_duty=False)

    def _change(self, *, on_duty: bool) -> None:
        if self._changing:
            return
        self._changing = True
        self.change_shift(on_duty)

    @work(exclusive=True, group="shift")
    async def change_shift(self, on_duty: bool) -> None:
        client, connection = self.ctx.client, self.ctx.connection
        self._error("Starting the shift…" if on_duty else "Ending the shift…")
        try:
            rider = await client.set_shift(on_duty=on_duty)
        except ApiError as exc:
            connection.report(exc)
            if exc.code == "trip_in_progress":
                self._error("Finish or hand back the current trip first")
            else:
                self._error(f"Shift not changed: {describe(exc)}")
            return
        finally:
            self._changing = False
        connection.answered()
        self._error("")
        self.post_message(RiderAnswered(rider))
        self.post_message(PollAsked())

    def action_open_trip(self) -> None:
        if self.ctx.live.trip is not None and self.is_current:
            self.app.push_screen(TripScreen(self.ctx))

    def action_refresh(self) -> None:
        self.post_message(PollAsked(rider=True))
