"""One line about the GPS: where, how fresh, whether the server has it, what is kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

from rider_app.clock import age

if TYPE_CHECKING:
    from rider_app.app import RiderApp


class GpsStatus(Static):
    def on_mount(self) -> None:
        for name in ("last_fix", "buffered_fixes", "gps_state", "socket_up", "on_duty"):
            self.watch(self.app, name, self.show)
        self.set_interval(1.0, self.show)

    def show(self, _value: object = None) -> None:
        app = cast("RiderApp", self.app)
        fix = app.last_fix
        now = app.clock()
        if fix is None:
            parts = [f"GPS: {app.gps_state}"]
        else:
            parts = [
                f"GPS {fix.source} {fix.lat:.5f}, {fix.lng:.5f}",
                f"{age((now - fix.at).total_seconds())} ago",
            ]
        if not app.on_duty:
            parts.append("not sent off duty")
        elif app.last_push_at is not None:
            parts.append(f"server has it ({age((now - app.last_push_at).total_seconds())} ago)")
        if app.buffered_fixes:
            parts.append(f"{app.buffered_fixes} kept offline")
        if app.use_socket:
            parts.append("live ✔" if app.socket_up else "live ✘ (reconnecting)")
        self.update(" · ".join(parts))
