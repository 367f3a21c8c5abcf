"""Pickup at the store: scan (or type) the bag label of every order on the trip.

Scanner input needs no focused field: every key reaches ``on_key``, which feeds the
keyboard-wedge detector. A scanner's burst becomes a label; keys a person typed come back
out of the detector (at most ``max_gap`` later) and run this screen's key bindings. When
there are as many labels as orders they are sent; the server checks that every order's
label is among them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, cast

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from rider_app.api import describe
from rider_app.messages import LabelRead, TripUpdated
from rider_app.screens.dialogs import TypeLabelScreen
from rider_app.widgets.banner import ConnectionBanner
from scanners.wedge import WedgeDetector
from shared.client import ApiError, ConnectionLost
from shared.schemas import TripPublic

if TYPE_CHECKING:
    from rider_app.app import RiderApp


def wedge_key(event: events.Key) -> str:
    """What the detector is fed: the character a key typed, or the key's name."""
    char = event.character
    if event.key != "enter" and char is not None and len(char) == 1 and char.isprintable():
        return char
    return event.key


def normalise_label(code: str) -> str:
    return code.strip().upper()


class PickupScreen(Screen[None]):
    BINDINGS = [
        Binding("m", "type_label", "Type a label"),
        Binding("enter", "confirm", "Confirm pickup"),
        Binding("backspace", "undo", "Remove last"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, trip: TripPublic) -> None:
        super().__init__()
        self.trip = trip
        self.labels: list[str] = []
        self.wedge = WedgeDetector(source="wedge")
        self._fed: deque[str] = deque()  # key names of the keys the detector holds
        self._wedge_timer: Timer | None = None
        self.sending = False
        self.done = False

    @property
    def rider_app(self) -> RiderApp:
        return cast("RiderApp", self.app)

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
        yield Static("Scan each order's bag label (M: type it)", id="pickup-feedback")
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
        panel = self.query_one("#pickup-feedback", Static)
        for name in ("ok", "error", "info"):
            panel.set_class(name == kind, f"-{name}")
        panel.update(text)

    # --- keys: scanner or person ----------------------------------------------------
    async def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self._fed.append(event.key)
        result = self.wedge.feed(wedge_key(event), self.rider_app.monotonic())
        if result.scan is not None:
            self._fed.clear()  # the held keys and the Enter were the scan
            self.post_message(LabelRead(result.scan))
        await self._replay(len(result.passthrough))
        self._arm_wedge_poll(result.pending)

    async def _replay(self, count: int) -> None:
        """Keys the detector handed back were typed by a person: run their bindings."""
        for _ in range(min(count, len(self._fed))):
            key = self._fed.popleft()
            active = self.app.active_bindings.get(key)
            if active is not None and active.enabled:
                await self.app.run_action(active.binding.action, active.node)

    def _arm_wedge_poll(self, pending: bool) -> None:
        if self._wedge_timer is not None:
            self._wedge_timer.stop()
            self._wedge_timer = None
        if pending:
            self._wedge_timer = self.set_timer(self.wedge.max_gap * 1.2, self._poll_wedge)

    async def _poll_wedge(self) -> None:
        self._wedge_timer = None
        result = self.wedge.poll(self.rider_app.monotonic())
        await self._replay(len(result.passthrough))
        self._arm_wedge_poll(result.pending)

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
        app = self.rider_app
        attempt, lost = 0, False
        try:
            while True:
                self.feedback("Checking the bags…")
                try:
                    result = await app.client.pick_up(self.trip.trip_id, bag_labels=labels)
                    break
                except ConnectionLost as exc:
                    app.report_offline(exc)
                    lost = True
                    self.feedback("Connection lost — retrying…", "error")
                    await app.retry_pause(app.retry_delay(attempt))
                    attempt += 1
                except ApiError as exc:
                    if lost and exc.code == "invalid_trip_state":
                        self.done = True  # the first try went through; its answer was lost
                        app.notify("Picked up ✔ (confirmed after reconnecting)")
                        app.poll_trip()
                        if self.is_current:
                            self.app.pop_screen()
                        return
                    self._refused(exc)
                    return
        finally:
            self.sending = False
        app.report_online()
        self.done = True
        self.feedback("Picked up ✔", "ok")
        app.notify(f"Picked up ✔ {len(labels)} bag{'s' * (len(labels) != 1)} — D: depart")
        app.trip_answered(result)
        if self.is_current:
            self.app.pop_screen()

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
