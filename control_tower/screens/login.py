"""Log in: a manager's login and password; the city defaults to the manager's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from control_tower.api import describe
from shared.client import ApiError, ConnectionLost

if TYPE_CHECKING:
    from control_tower.app import ControlTowerApp


class LoginScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, *, error: str = "", secret: str | None = None) -> None:
        super().__init__()
        self.initial_error = error
        self.secret = secret  # given up front (--password-env): log in at once

    @property
    def tower(self) -> ControlTowerApp:
        return cast("ControlTowerApp", self.app)

    def compose(self) -> ComposeResult:
        app = self.tower
        with Vertical(id="login-box"):
            yield Static("qc control tower", id="login-title")
            yield Static(f"server {app.client.base_url}", classes="muted", markup=False)
            yield Label("Manager")
            yield Input(app.login_hint or "", placeholder="manager.blr", id="login")
            yield Label("Password")
            yield Input(password=True, placeholder="••••••", id="password")
            yield Label("City (empty: your own)")
            yield Input(app.requested_city or "", placeholder="BLR", id="city")
            yield Static(self.initial_error, id="login-error", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        if self.secret and self.tower.login_hint:
            self.query_one("#password", Input).value = self.secret
            self._error("Logging in…")
            self.log_in(self.tower.login_hint, self.secret, self.tower.requested_city or "")
            return
        first_empty = next((i for i in self.query(Input) if not i.value), None)
        (first_empty or self.query_one("#password", Input)).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        login = self.query_one("#login", Input).value.strip()
        secret = self.query_one("#password", Input).value
        if event.input.id == "login" or (event.input.id == "password" and not secret):
            self.focus_next()
            return
        if not login or not secret:
            self._error("Enter your login and password")
            return
        city = self.query_one("#city", Input).value.strip().upper()
        self._error("Logging in…")
        self.log_in(login, secret, city)

    def _error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(text)

    @work(exclusive=True, group="login")
    async def log_in(self, login: str, secret: str, city: str) -> None:
        app = self.tower
        try:
            await app.client.login(login, secret)
        except ConnectionLost:
            self._error("Cannot reach the server — check the network and try again")
            return
        except ApiError as exc:
            wrong = exc.code == "invalid_credentials"
            self._error("Wrong login or password" if wrong else describe(exc))
            password = self.query_one("#password", Input)
            password.clear()
            password.focus()
            return
        problem = app.logged_in(city or None)
        if problem:
            self._error(problem)
