"""Log in: rider login and PIN."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from rider_app.api import describe
from rider_app.widgets.banner import ConnectionBanner
from shared.client import ApiError, ConnectionLost
from shared.enums import Role

if TYPE_CHECKING:
    from rider_app.app import RiderApp


class LoginScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    @property
    def rider_app(self) -> RiderApp:
        return cast("RiderApp", self.app)

    def compose(self) -> ComposeResult:
        app = self.rider_app
        yield ConnectionBanner()
        with Vertical(id="login-box"):
            yield Static("qc rider", id="login-title")
            yield Static(f"server {app.client.base_url}", classes="muted")
            yield Label("Rider")
            yield Input(app.login_hint or "", placeholder="rider.001", id="login")
            yield Label("PIN")
            yield Input(password=True, placeholder="••••", id="pin")
            yield Static("", id="login-error")
        yield Footer()

    def on_mount(self) -> None:
        first_empty = next((i for i in self.query(Input) if not i.value), None)
        (first_empty or self.query_one("#pin", Input)).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "pin":
            self.focus_next()
            return
        login = self.query_one("#login", Input).value.strip()
        pin = self.query_one("#pin", Input).value
        if not login or not pin:
            self._error("Enter your rider login and PIN")
            return
        self._error("Logging in…")
        self.log_in(login, pin)

    def _error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(text)

    @work(exclusive=True, group="login")
    async def log_in(self, login: str, pin: str) -> None:
        app = self.rider_app
        try:
            result = await app.client.login(login, pin)
        except ConnectionLost as exc:
            app.report_offline(exc)
            self._error("Cannot reach the server — check the network and try again")
            return
        except ApiError as exc:
            wrong = exc.code == "invalid_credentials"
            self._error("Wrong rider or PIN" if wrong else describe(exc))
            self.query_one("#pin", Input).clear()
            self.query_one("#pin", Input).focus()
            return
        app.report_online()
        if result.user.role != Role.RIDER:
            app.client.token = app.client.user = None
            self._error(f"{result.user.login} is not a rider")
            return
        app.logged_in()
