"""The exception flow's dialogs: report a short (missing or damaged), choose a substitute,
type a code by hand. Each has one focused field: Enter confirms, Escape backs out."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from qc_tui.dialogs import TextEntryScreen
from shared.schemas.picking import PickLinePublic, ShortPickResult

REASONS = ("missing", "damaged")


@dataclass(frozen=True, slots=True)
class ShortChoice:
    found: int  # good units found on the shelf (at least the ones already scanned)
    reason: str  # "missing" or "damaged"


@dataclass(frozen=True, slots=True)
class SubstituteChoice:
    sku_id: str
    name: str
    quantity: int


def rupees(paise: int) -> str:
    return f"₹{paise / 100:,.2f}"


class ShortScreen(ModalScreen[ShortChoice | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "switch_reason", "Missing/Damaged", priority=True),
    ]

    def __init__(self, line: PickLinePublic, reason: str = "missing") -> None:
        super().__init__()
        self.line = line
        self.reason = reason if reason in REASONS else "missing"

    def compose(self) -> ComposeResult:
        ln = self.line
        ordered = ln.ordered_qty or ln.quantity
        # after an earlier short, fewer than ordered are left to pick
        left = f" · to pick {ln.quantity}" if ordered != ln.quantity else ""
        with Vertical(classes="dialog", id="short-dialog"):
            yield Static("Report short", classes="dialog-title")
            yield Static(
                f"{ln.name}\nbin {ln.bin_code or '?'} · ordered {ordered}{left} · "
                f"scanned {ln.picked_qty}"
            )
            yield Label(f"Good units found on the shelf ({ln.picked_qty}-{ln.quantity - 1})")
            yield Input(str(ln.picked_qty), id="found", type="integer", max_length=2)
            yield Static(id="reason")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static("Enter: report · Tab: missing/damaged · Esc: cancel", classes="muted")

    def on_mount(self) -> None:
        self._show_reason()
        self.query_one(Input).focus()

    def _show_reason(self) -> None:
        marks = "   ".join(f"{'●' if r == self.reason else '○'} {r}" for r in REASONS)
        self.query_one("#reason", Static).update(f"Reason: {marks}")

    def action_switch_reason(self) -> None:
        self.reason = REASONS[(REASONS.index(self.reason) + 1) % len(REASONS)]
        self._show_reason()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        ln = self.line
        try:
            found = int(event.value)
        except ValueError:
            found = -1
        if not ln.picked_qty <= found < ln.quantity:
            self.query_one("#dialog-error", Static).update(
                f"Enter a number from {ln.picked_qty} to {ln.quantity - 1}"
            )
            return
        self.dismiss(ShortChoice(found, self.reason))


class SubstituteScreen(ModalScreen[SubstituteChoice | None]):
    BINDINGS = [
        Binding("escape", "no_substitute", "No substitute"),
        Binding("plus,equals_sign", "quantity(1)", "More"),
        Binding("minus", "quantity(-1)", "Fewer"),
    ]

    def __init__(self, line: PickLinePublic, short: ShortPickResult) -> None:
        super().__init__()
        self.line = line
        self.short = short
        self.quantity = short.short_qty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="substitute-dialog"):
            yield Static("Substitute", classes="dialog-title")
            yield Static(f"{self.short.short_qty} x {self.line.name} short. Offer instead:")
            yield OptionList(
                *(
                    Option(
                        f"{o.name} · {rupees(o.price_paise)} · {o.available_qty} in stock",
                        id=o.sku_id,
                    )
                    for o in self.short.substitutes
                ),
                id="substitutes",
            )
            yield Static(id="sub-qty")
            yield Static("Enter: use it · +/-: quantity · Esc: no substitute", classes="muted")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()
        self._show_quantity()

    def _limit(self) -> int:
        index = self.query_one(OptionList).highlighted or 0
        offer = self.short.substitutes[index]
        return max(1, min(self.short.short_qty, offer.available_qty))

    def _show_quantity(self) -> None:
        self.quantity = max(1, min(self.quantity, self._limit()))
        self.query_one("#sub-qty", Static).update(f"Quantity: {self.quantity}")

    def on_option_list_option_highlighted(self, _event: OptionList.OptionHighlighted) -> None:
        self._show_quantity()

    def action_quantity(self, step: int) -> None:
        self.quantity += step
        self._show_quantity()

    def action_no_substitute(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        offer = self.short.substitutes[event.option_index]
        self.dismiss(SubstituteChoice(offer.sku_id, offer.name, self.quantity))


class ManualCodeScreen(TextEntryScreen):
    """For a label the scanner cannot read: type the digits under the barcode."""

    HEADING = "Type a code"
    PLACEHOLDER = "digits under the barcode"
    FIELD_ID = "code"
    MAX_LENGTH = 120
    HINT = "Enter: count it · Esc: cancel"
    DIALOG_ID = "manual-dialog"
