"""A one-line banner that appears while the live connection is down."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ConnectionBanner(Static):
    """Hidden until :meth:`show_lost`; :meth:`hide` once the connection is back."""

    DEFAULT_CSS = """
    ConnectionBanner {
        display: none;
        width: 1fr;
        height: 1;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
    }
    ConnectionBanner.-lost {
        display: block;
    }
    """

    @property
    def lost(self) -> bool:
        return self.has_class("-lost")

    def show_lost(self, reason: str | None = None) -> None:
        """Show the banner; ``reason`` is shown as plain text (never parsed as markup)."""
        message = Text("⚠ Connection lost — retrying…")
        if reason:
            message.append(f" ({reason})", style="not bold")
        self.update(message)
        self.add_class("-lost")

    def hide(self) -> None:
        self.remove_class("-lost")
