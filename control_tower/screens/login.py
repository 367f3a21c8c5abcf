"""Log in: a manager's login and password; the city defaults to the manager's own."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Input, Label

from control_tower.context import TowerContext
from control_tower.messages import LoggedIn
from qc_tui import login
from shared.schemas.identity import UserPublic


class LoginScreen(login.LoginScreen):
    HEADING = "qc control tower"
    SECRET = "password"
    WRONG = "Wrong login or password"
    MISSING = "Enter your login and password"

    def __init__(
        self,
        ctx: TowerContext,
        *,
        login: str | None = None,
        city: str | None = None,
        error: str = "",
        secret: str | None = None,
    ) -> None:
        super().__init__(ctx.client, error=error)
        self.login_hint = login
        self.city = city
        self.secret = secret  # given up front (--password-env): log in at once

    def fields(self) -> ComposeResult:
        yield Label("Manager")
        yield Input(self.login_hint or "", placeholder="manager.blr", id="login")
        yield Label("Password")
        yield Input(password=True, placeholder="••••••", id="password")
        yield Label("City (empty: your own)")
        yield Input(self.city or "", placeholder="BLR", id="city")

    def on_mount(self) -> None:
        if self.secret and self.login_hint:
            self.secret_input.value = self.secret
            self.error("Logging in…")
            self.log_in(self.login_hint, self.secret)
            return
        super().on_mount()

    def keep_typing(self, field: Input) -> bool:
        return field.id == "login" or (field.id == "password" and not field.value)

    def accepted(self, user: UserPublic) -> None:
        self.post_message(LoggedIn(self.value("city").upper() or None))
