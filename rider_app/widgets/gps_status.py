"""One line about the GPS: where, how fresh, whether the server has it, what is kept."""

from __future__ import annotations

from textual.widgets import Static

from rider_app.context import RiderContext
from rider_app.formats import age


class GpsStatus(Static):
    def __init__(self, ctx: RiderContext, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ctx = ctx

    def on_mount(self) -> None:
        for name in ("last_fix", "buffered_fixes", "gps_state", "socket_up", "on_duty"):
            self.watch(self.app, name, self.show)
        self.set_interval(1.0, self.show)

    def show(self, _value: object = None) -> None:
        live = self.ctx.live
        fix = live.last_fix
        now = self.ctx.clock.wall()
        if fix is None:
            parts = [f"GPS: {live.gps_state}"]
        else:
            parts = [
                f"GPS {fix.source} {fix.lat:.5f}, {fix.lng:.5f}",
                f"{age((now - fix.at).total_seconds())} ago",
            ]
        if not live.on_duty:
            parts.append("not sent off duty")
        elif live.last_push_at is not None:
            parts.append(f"server has it ({age((now - live.last_push_at).total_seconds())} ago)")
        if live.buffered_fixes:
            parts.append(f"{live.buffered_fixes} kept offline")
        if self.ctx.use_socket:
            parts.append("live ✔" if live.socket_up else "live ✘ (reconnecting)")
        self.update(" · ".join(parts))
