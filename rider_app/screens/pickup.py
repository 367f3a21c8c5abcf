"""Pickup at the store: scan (or type) the bag label of every order on the trip (a USB
keyboard-wedge scanner needs no focused field, see ``qc_tui.wedge``). When there are as many
labels as orders they are sent; the server checks that every order's label is among them.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from qc_tui.feedback import ResultPanel
from qc_tui.wedge import WedgeScreen
from rider_app.context import RiderContext
from rider_app.messages import LabelRead, PollAsked, TripAnswered, TripUpdated
from rider_app.screens.dialogs import TypeLabelScreen
from scanners.types import Scan
from scanners.wedge import WedgeDetector
from shared.client import ApiError
from shared.schemas.delivery import TripPublic


def normalise_label(code: str) -> str:
    return code.strip().upper()


class PickupScreen(WedgeScreen):
    FNC1 = False  # bag labels carry no GS1 data
    BINDINGS = [
        Binding("m", "type_label", "Type a label"),
        Binding("enter", "confirm", "Confirm pickup"),
        Binding("backspace", "undo", "Remove last"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, ctx: RiderContext, trip: TripPublic) -> None:
        super().__init__(WedgeDetector(source="wedge"), ctx.monotonic)
        self.ctx = ctx
        self.trip = trip
        self.labels: list[str] = []
        self.sending = False
        self.done = False
        self._lost = False  # an attempt went unanswered: the next may find it done

    @property
    def bags(self) -> int:
        return len(self.trip.stops)

    def compose(self) -> ComposeResult:
        yield Static(
            f"Pickup at {self.trip.store_id} · {self.bags} bag{'s' * (self.bags != 1)} to scan",
            classes="title",
        )
        yield ConnectionBanner()
        yield Static(id="bag-list")
        yield ResultPanel("Scan each order's bag label (M: type it)", id="pickup-feedback")
        yield Footer()

    def on_mount(self) -> None:
        self._show()

    def on_trip_updated(self, message: TripUpdated) -> None:
        self.trip = message.trip

    def _show(self) -> None:
        rows = [f"  ✔ {label}" for label in self.labels]
        rows += ["  ○ …"] * max(0, self.bags - len(self.labels))
        self.query_one("#bag-list", Static).update("\n".join(rows))

    def feedback(self, text: str, kind: str = "info") -> None:
        self.query_one("#pickup-feedback", ResultPanel).say(text, kind)

    def scanned(self, scan: Scan) -> None:
        self.post_message(LabelRead(scan))

    # --- labels ---------------------------------------------------------------------
    def on_label_read(self, message: LabelRead) -> None:
        if not self.is_current or self.done:
            return
        self.add_label(message.scan.code)

    def add_label(self, code: str) -> None:
        label = normalise_label(code)
        if not label:
            return
        if label in self.labels:
            self.app.bell()
            self.feedback(f"{label} is already scanned", "error")
            return
        if len(self.labels) >= self.bags:
            self.app.bell()
            self.feedback(
                f"{self.bags} label{'s' * (self.bags != 1)} already: Backspace removes one",
                "error",
            )
            return
        self.labels.append(label)
        self._show()
        left = self.bags - len(self.labels)
        if left:
            self.feedback(f"✔ {label} · {left} more to scan", "ok")
        else:
            self.send()

    def action_type_label(self) -> None:
        if not self.done:
            self.app.push_screen(TypeLabelScreen(), self._typed)

    def _typed(self, code: str | None) -> None:
        if code:
            self.add_label(code)

    def action_undo(self) -> None:
        if self.labels and not self.sending and not self.done:
            removed = self.labels.pop()
            self._show()
            self.feedback(f"Removed {removed}")

    def action_confirm(self) -> None:
        if self.done:
            self.app.pop_screen()
        elif self.labels:
            self.send()
        else:
            self.feedback("Scan the bag labels first", "error")

    def action_back(self) -> None:
        if not self.sending:
            self.app.pop_screen()

    def send(self) -> None:
        if not self.sending:
            self.sending = True
            self.pick_up(list(self.labels))

    @work(exclusive=True, group="pickup")
    async def pick_up(self, labels: list[str]) -> None:
        """Retries by itself while the server is unreachable. Picking up twice is refused
        (the trip is PICKED_UP), which after a lost answer means it went through."""
        client = self.ctx.client
        self._lost = False
        try:
            result = await self.ctx.connection.send_until_answered(
                lambda: client.pick_up(self.trip.trip_id, bag_labels=labels),
                trying=lambda: self.feedback("Checking the bags…"),
                waiting=self._waiting,
            )
        except ApiError as exc:
            if self._lost and exc.code == "invalid_trip_state":
                self.done = True  # the first try went through; its answer was lost
                self.app.notify("Picked up ✔ (confirmed after reconnecting)")
                self.app.post_message(PollAsked())
                if self.is_current:
                    self.app.pop_screen()
                return
            self._refused(exc)
            return
        finally:
            self.sending = False
        self.done = True
        self.feedback("Picked up ✔", "ok")
        self.app.notify(f"Picked up ✔ {len(labels)} bag{'s' * (len(labels) != 1)} — D: depart")
        self.app.post_message(TripAnswered(result))
        if self.is_current:
            self.app.pop_screen()

    def _waiting(self, _why: str) -> None:
        self._lost = True
        self.feedback("Connection lost — retrying…", "error")

    def _refused(self, exc: ApiError) -> None:
        self.app.bell()
        if exc.code == "bag_not_scanned":
            missing = [str(o)[:8] for o in exc.problem.get("orders", [])]
            which = ", ".join(missing) or "some orders"
            self.labels.clear()
            self._show()
            self.feedback(f"WRONG BAG: no label scanned for order {which} — scan again", "error")
        elif exc.code == "not_packed":
            self.feedback("Not every bag is packed yet — ask the store", "error")
        else:
            self.feedback(f"Pickup refused: {describe(exc)}", "error")
