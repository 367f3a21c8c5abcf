"""The route (v on the trip): where the rider still has to go, in riding order, as a
plain map and a turn list (each leg's distance, compass heading and riding time). It is
redrawn when the server pushes a change of the trip and when the GPS moves: nothing is
asked of the server for it."""

from __future__ import annotations

from rich.table import Table
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static

from qc_tui.banner import ConnectionBanner
from rider_app.context import RiderContext
from rider_app.formats import distance, minutes
from rider_app.messages import TripUpdated
from rider_app.route import stops_in_order
from rider_app.widgets.gps_status import GpsStatus
from rider_app.widgets.route_map import RouteMap
from shared.schemas.delivery import TripPublic


class RouteScreen(Screen[None]):
    BINDINGS = [Binding("escape,v", "app.pop_screen", "Back to the trip")]

    def __init__(self, ctx: RiderContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.trip: TripPublic | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="route-title", classes="title")
        yield ConnectionBanner()
        with Horizontal(id="route-body"):
            yield RouteMap(id="route-map")
            yield Static(id="turns")
        yield GpsStatus(self.ctx, id="gps")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RouteMap).border_title = "Map"
        self.query_one("#turns").border_title = "Turn list"
        self.show_route(self.ctx.live.trip)
        self.watch(self.app, "last_fix", lambda _fix: self.show_route(self.trip), init=False)

    def on_trip_updated(self, message: TripUpdated) -> None:
        self.show_route(message.trip)

    def on_screen_resume(self, _event: events.ScreenResume) -> None:
        self.show_route(self.ctx.live.trip)

    def show_route(self, trip: TripPublic | None) -> None:
        if trip is None:
            return
        self.trip = trip
        here = self.ctx.live.position()
        stops = stops_in_order(trip, here)
        left = sum(1 for s in stops if s.mark != "S")
        self.query_one("#route-title", Static).update(
            f"Route · trip {str(trip.trip_id)[:8]} · {left} drop{'s' * (left != 1)} to go"
        )
        points = ([("you", here)] if here is not None else []) + [(s.mark, s.at) for s in stops]
        self.query_one(RouteMap).show(points)
        turns = Table.grid(padding=(0, 1))
        for _ in range(4):
            turns.add_column(no_wrap=True)
        turns.add_column(overflow="ellipsis", no_wrap=True)
        for stop in stops:
            turns.add_row(
                f"[b]{stop.mark}[/b]",
                distance(stop.leg.distance_m),
                stop.heading or "—",
                "—" if stop.leg.eta_s is None else minutes(stop.leg.eta_s),
                stop.label,
            )
        if not stops:
            turns.add_row("", "All drops done.", "", "", "")
        self.query_one("#turns", Static).update(turns)
