"""The rider's dialogs: type a bag label, why a drop failed or a trip is given back.
Each has one focused control: Enter confirms, Escape backs out."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Digits, Static

from qc_tui.dialogs import ChoiceScreen, TextEntryScreen

FAIL_REASONS = (
    "customer not reachable",
    "customer not at the address",
    "wrong or incomplete address",
    "customer refused the order",
    "unsafe to deliver",
)
RELEASE_REASONS = (
    "bags not ready",
    "vehicle problem",
    "store closed or unreachable",
    "personal emergency",
)


class TypeLabelScreen(TextEntryScreen):
    """For a bag label the scanner cannot read: type what is printed under it."""

    HEADING = "Type a bag label"
    PLACEHOLDER = "QC-KOR-1A2B3C"
    FIELD_ID = "label"
    MAX_LENGTH = 40
    HINT = "Enter: add it · Esc: cancel"
    DIALOG_ID = "label-dialog"


class ReasonScreen(ChoiceScreen):
    """One reason from a short list (``None``: backed out)."""

    QUESTION = ""
    REASONS: tuple[str, ...] = ()
    HINT = "Enter: choose · Esc: back"
    DIALOG_ID = ""

    def __init__(self) -> None:
        super().__init__(
            self.QUESTION,
            [(reason, reason) for reason in self.REASONS],
            hint=self.HINT,
            dialog_id=self.DIALOG_ID,
            list_id="reasons",
        )


class FailReasonScreen(ReasonScreen):
    """Why the drop failed; the order is cancelled and the customer refunded."""

    QUESTION = "Failed delivery — why?"
    REASONS = FAIL_REASONS
    HINT = "Enter: report it · Esc: back"
    DIALOG_ID = "fail-dialog"


class ReleaseReasonScreen(ReasonScreen):
    """Why the rider gives the trip back before pickup; the orders go back to dispatch."""

    QUESTION = "Give the trip back — why?"
    REASONS = RELEASE_REASONS
    DIALOG_ID = "release-dialog"


class CallScreen(ModalScreen[None]):
    """The customer's number, large, to dial on the rider's own phone (a terminal cannot)."""

    BINDINGS = [Binding("escape,c,enter", "dismiss", "Close")]

    def __init__(self, phone: str) -> None:
        super().__init__()
        self.phone = phone

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="call-dialog"):
            yield Static("Call the customer", classes="dialog-title")
            yield Digits(self.phone, id="call-number")
            yield Static("Esc: close")
