"""Log in: store and picker PIN."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from picker_app.api import describe
from picker_app.widgets.banner import ConnectionBanner
from shared.client import ApiError, ConnectionLost
from shared.enums import Role

if TYPE_CHECKING:
    from picker_app.app import PickerApp

STAFF = {Role.PICKER, Role.MANAGER, Role.ADMIN}


class LoginScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    @property
    def picker_app(self) -> PickerApp:
        return cast("PickerApp", self.app)

    def compose(self) -> ComposeResult:
        app = self.picker_app
        yield ConnectionBanner()
        with Vertical(id="login-box"):
            yield Static("qc picker", id="login-title")
            yield Static(f"server {app.client.base_url}", classes="muted")
            yield Label("Store")
            yield Input(app.store_id or "", placeholder="BLR-KOR", id="store")
            yield Label("Picker")
            yield Input(app.login_hint or "", placeholder="picker.kor.1", id="login")
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
        store = self.query_one("#store", Input).value.strip().upper()
        login = self.query_one("#login", Input).value.strip()
        pin = self.query_one("#pin", Input).value
        if not login or not pin:
            self._error("Enter your picker login and PIN")
            return
        self._error("Logging in…")
        self.log_in(store, login, pin)

    def _error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(text)

    @work(exclusive=True, group="login")
    async def log_in(self, store: str, login: str, pin: str) -> None:
        app = self.picker_app
        try:
            result = await app.client.login(login, pin)
        except ConnectionLost as exc:
            app.report_offline(exc)
            self._error("Cannot reach the server — check the network and try again")
            return
        except ApiError as exc:
            wrong = exc.code == "invalid_credentials"
            self._error("Wrong picker or PIN" if wrong else describe(exc))
            self.query_one("#pin", Input).clear()
            self.query_one("#pin", Input).focus()
            return
        app.report_online()
        user = result.user
        if user.role not in STAFF:
            self._error(f"{user.login} is not store staff")
            return
        if user.store_id and store and user.store_id != store:
            self._error(f"{user.login} works at {user.store_id}, not {store}")
            return
        if not (store or user.store_id):
            self._error("Enter the store")
            return
        app.logged_in(store or str(user.store_id))
