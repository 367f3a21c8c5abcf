"""Small dialogs: confirm, type a bag label, why a drop failed or a trip is given back.
Each has one focused control: Enter confirms, Escape backs out."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

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


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("enter,y", "answer(True)", "Yes", priority=True),
        Binding("escape,n", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Static(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail)
            yield Static("Enter/Y: yes · Esc/N: no", classes="muted")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TypeLabelScreen(ModalScreen[str | None]):
    """For a bag label the scanner cannot read: type what is printed under it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="label-dialog"):
            yield Static("Type a bag label", classes="dialog-title")
            yield Input(placeholder="QC-KOR-1A2B3C", id="label", max_length=40)
            yield Static("Enter: add it · Esc: cancel", classes="muted")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)


class ReasonScreen(ModalScreen[str | None]):
    """One reason from a short list (``None``: backed out)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    QUESTION = ""
    REASONS: tuple[str, ...] = ()
    HINT = "Enter: choose · Esc: back"
    DIALOG_ID = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id=self.DIALOG_ID):
            yield Static(self.QUESTION, classes="dialog-title")
            yield OptionList(*(Option(r, id=r) for r in self.REASONS), id="reasons")
            yield Static(self.HINT, classes="muted")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.REASONS[event.option_index])


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
