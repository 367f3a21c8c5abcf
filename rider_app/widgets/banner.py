"""The connection banner: shown on every screen while the server cannot be reached."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

if TYPE_CHECKING:
    from rider_app.app import RiderApp


class ConnectionBanner(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "online", self._changed)
        self.watch(self.app, "buffered_fixes", self._changed)

    def _changed(self, _value: object = None) -> None:
        app = cast("RiderApp", self.app)
        self.set_class(not app.online, "-offline")
        if app.online:
            self.update("")
            return
        kept = app.buffered_fixes
        fixes = (
            f" · {kept} GPS fix{'es' if kept != 1 else ''} kept, sent in order when back"
            if kept
            else ""
        )
        self.update(f"⚠ Connection lost — retrying…{fixes}")
