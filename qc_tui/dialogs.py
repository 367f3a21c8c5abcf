"""Small dialogs every terminal uses: confirm, pick one of a list, type a short text.
Each has one focused control: Enter confirms, Escape backs out (answering None or False).
They share the look of the app's ``.dialog`` rules."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


class DialogInput(Input):
    """The text field of a dialog a key opens: it takes no key pressed before it was
    there. When the app is slow to show the dialog, the person presses the key again; that
    press, queued while nothing seemed to happen, is not text meant for the dialog."""

    _shown_at = float("inf")

    @on(events.Mount)
    def _shown(self, event: events.Mount) -> None:
        self._shown_at = event.time

    def on_key(self, event: events.Key) -> None:
        if event.time < self._shown_at:
            event.stop()
            event.prevent_default()


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
            yield Static(self.question, classes="dialog-title", markup=False)
            if self.detail:
                yield Static(self.detail, markup=False)
            yield Static("Enter/Y: yes · Esc/N: no", classes="muted")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one: answers the chosen option's id."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        options: Sequence[tuple[str, str | Text]],
        *,
        empty: str = "Nothing",
        hint: str = "↑↓: choose · Enter: take it · Esc: back",
        dialog_id: str = "choice-dialog",
        list_id: str = "choices",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.options = tuple(options)
        self.empty = empty
        self.hint = hint
        self.dialog_id = dialog_id
        self.list_id = list_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id=self.dialog_id):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.options:
                yield OptionList(
                    *(Option(prompt, id=key) for key, prompt in self.options), id=self.list_id
                )
                yield Static(self.hint, classes="muted")
            else:
                yield Static(self.empty, classes="dialog-error", markup=False)
                yield Static("Esc: back", classes="muted")

    def on_mount(self) -> None:
        if self.options:
            choices = self.query_one(OptionList)
            choices.highlighted = 0
            choices.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)


class TextEntryScreen(ModalScreen[str | None]):
    """Type a short text (a code the scanner cannot read...): answers it, stripped, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    HEADING = ""
    PLACEHOLDER = ""
    FIELD_ID = "text"
    MAX_LENGTH = 120
    HINT = "Enter: take it · Esc: cancel"
    DIALOG_ID = "text-dialog"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id=self.DIALOG_ID):
            yield Static(self.HEADING, classes="dialog-title")
            yield DialogInput(
                placeholder=self.PLACEHOLDER, id=self.FIELD_ID, max_length=self.MAX_LENGTH
            )
            yield Static(self.HINT, classes="muted")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)
