"""Log in: rider login and PIN."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Input, Label

from qc_tui import login
from rider_app.context import RiderContext
from rider_app.messages import LoggedIn
from shared.enums import Role
from shared.schemas.identity import UserPublic


class LoginScreen(login.LoginScreen):
    HEADING = "qc rider"
    WRONG = "Wrong rider or PIN"
    MISSING = "Enter your rider login and PIN"

    def __init__(self, ctx: RiderContext) -> None:
        super().__init__(ctx.client, connection=ctx.connection)
        self.ctx = ctx

    def fields(self) -> ComposeResult:
        yield Label("Rider")
        yield Input(self.ctx.login_hint or "", placeholder="rider.001", id="login")
        yield Label("PIN")
        yield Input(password=True, placeholder="••••", id="pin")

    def accepted(self, user: UserPublic) -> None:
        if user.role != Role.RIDER:
            self.client.token = self.client.user = None
            self.error(f"{user.login} is not a rider")
            return
        self.post_message(LoggedIn())
