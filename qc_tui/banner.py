"""The connection banner: one line, hidden until the server is lost."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from qc_tui.app import ServerApp

LOST = "⚠ Connection lost — retrying…"


class ConnectionBanner(Static):
    """Hidden until :meth:`show_lost`; :meth:`hide` once the connection is back. Inside a
    :class:`ServerApp` it follows the app's ``online`` by itself."""

    DEFAULT_CSS = """
    ConnectionBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
    }
    ConnectionBanner.-lost {
        display: block;
    }
    """

    def on_mount(self) -> None:
        app = self.app
        if isinstance(app, ServerApp):
            self.watch(app, "online", self._follow)
            if app.KEPT_COUNT:
                self.watch(app, app.KEPT_COUNT, self._follow)

    def _follow(self, _value: object = None) -> None:
        app = self.app
        assert isinstance(app, ServerApp)
        if app.online:
            self.update("")
            self.hide()
        else:
            self.show_lost(kept=app.kept_note())

    @property
    def lost(self) -> bool:
        return self.has_class("-lost")

    def show_lost(self, reason: str | None = None, *, kept: str = "") -> None:
        """Show the banner; ``reason`` is shown as plain text (never parsed as markup)."""
        message = Text(LOST + kept)
        if reason:
            message.append(f" ({reason})", style="not bold")
        self.update(message)
        self.add_class("-lost")

    def hide(self) -> None:
        self.remove_class("-lost")
