"""The manager's own dialogs: a reason (typed, or a common one) and a radius; confirm and
pick-one are ``qc_tui.dialogs``. Enter confirms, Escape backs out (the dialog answers None)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from qc_tui.dialogs import DialogInput

RADIUS_MIN_M = 500
RADIUS_MAX_M = 10_000
REASON_MAX = 200

PAUSE_REASONS = (
    "picking backlog",
    "no riders available",
    "power or network outage",
    "stock count in progress",
    "weather",
)
CANCEL_REASONS = (
    "customer asked by phone",
    "items unavailable",
    "address not serviceable",
    "store paused",
)
REASSIGN_REASONS = ("rider not responding", "rider vehicle breakdown", "faster rider nearby")
MOVE_REASONS = ("store short of riders", "peak at that store", "rider lives nearer")
FLASH_STOP_REASONS = ("oversold risk", "pricing error", "store overloaded")


class ReasonScreen(ModalScreen[str | None]):
    """Type a reason, or Tab to a common one and Enter."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, detail: str = "", *, suggestions: Sequence[str] = (), action: str = "OK"
    ) -> None:
        super().__init__()
        self.title_text = title
        self.detail = detail
        self.suggestions = tuple(suggestions)
        self.action = action

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="reason-dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.detail:
                yield Static(self.detail, markup=False)
            yield DialogInput(placeholder="reason", id="reason", max_length=REASON_MAX)
            if self.suggestions:
                yield OptionList(*(Option(s, id=s) for s in self.suggestions), id="suggestions")
            yield Static("", id="reason-error", classes="dialog-error")
            yield Static(f"Enter: {self.action} · Tab: common reasons · Esc: back", classes="muted")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        reason = event.value.strip()
        if not reason:
            self.query_one("#reason-error", Static).update("A reason is required")
            return
        self.dismiss(reason)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.suggestions[event.option_index])


class RadiusScreen(ModalScreen[tuple[int, str | None] | None]):
    """The store's service radius in metres, and an optional reason."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, store_name: str, current_m: int) -> None:
        super().__init__()
        self.store_name = store_name
        self.current_m = current_m

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="radius-dialog"):
            yield Static(f"Service radius of {self.store_name}", classes="dialog-title")
            yield Label(f"Metres ({RADIUS_MIN_M:,} to {RADIUS_MAX_M:,}), now {self.current_m:,}")
            yield DialogInput(str(self.current_m), type="integer", id="radius", max_length=5)
            yield Label("Reason (optional)")
            yield Input(placeholder="e.g. rain: shrink to keep the SLA", id="radius-reason")
            yield Static("", id="radius-error", classes="dialog-error")
            yield Static("Enter: set it · Tab: next field · Esc: back", classes="muted")

    def on_mount(self) -> None:
        radius = self.query_one("#radius", Input)
        radius.focus()
        radius.action_select_all()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = self.query_one("#radius", Input).value.strip()
        try:
            radius = int(text)
        except ValueError:
            radius = 0
        if not RADIUS_MIN_M <= radius <= RADIUS_MAX_M:
            self.query_one("#radius-error", Static).update(
                f"Between {RADIUS_MIN_M:,} and {RADIUS_MAX_M:,} metres"
            )
            self.query_one("#radius", Input).focus()
            return
        reason = self.query_one("#radius-reason", Input).value.strip() or None
        self.dismiss((radius, reason))
