"""The connection banner: shown on every screen while the server cannot be reached."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

if TYPE_CHECKING:
    from picker_app.app import PickerApp


class ConnectionBanner(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "online", self._changed)
        self.watch(self.app, "pending_scans", self._changed)

    def _changed(self, _value: object = None) -> None:
        app = cast("PickerApp", self.app)
        self.set_class(not app.online, "-offline")
        if app.online:
            self.update("")
            return
        waiting = app.pending_scans
        scans = (
            f" · {waiting} scan{'s' if waiting != 1 else ''} kept, sent when back"
            if waiting
            else ""
        )
        self.update(f"⚠ Connection lost — retrying…{scans}")
