"""The base of the picker and rider apps: a terminal that talks to the server and shows, on
every screen, whether it answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive

from qc_tui.api import RETRY_DELAYS
from qc_tui.connection import Connection


class ServerApp(App[None]):
    """``online`` (a reactive the banners follow) mirrors ``connection``; when the server is
    lost the app probes it until it answers, then ``reconnected`` runs."""

    # Textual's own ctrl+q is hidden: shown here, every footer says how to quit
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    online: reactive[bool] = reactive(True)
    # the reactive that counts what is kept to send later; the banner follows it too
    KEPT_COUNT = ""

    def __init__(
        self,
        *,
        health: Callable[[], Awaitable[object]],
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        super().__init__()
        self.connection = Connection(
            health, retry_delays=retry_delays, on_change=self._connection_changed
        )

    def _connection_changed(self, online: bool) -> None:
        self.online = online
        if online:
            self.reconnected()
        else:
            self.probe_connection()

    def reconnected(self) -> None:
        """The server answers again (after being lost)."""

    def kept_note(self) -> str:
        """What the banner adds while offline: what is kept to send once back."""
        return ""

    @work(exclusive=True, group="probe")
    async def probe_connection(self) -> None:
        await self.connection.probe()
