"""Log in: store and picker PIN."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Input, Label

from picker_app.context import PickerContext
from picker_app.messages import LoggedIn
from qc_tui import login
from shared.enums import Role
from shared.schemas.identity import UserPublic

STAFF = {Role.PICKER, Role.MANAGER, Role.ADMIN}


class LoginScreen(login.LoginScreen):
    HEADING = "qc picker"
    WRONG = "Wrong picker or PIN"
    MISSING = "Enter your picker login and PIN"

    def __init__(self, ctx: PickerContext) -> None:
        super().__init__(ctx.client, connection=ctx.connection)
        self.ctx = ctx

    def fields(self) -> ComposeResult:
        yield Label("Store")
        yield Input(self.ctx.store_id or "", placeholder="BLR-KOR", id="store")
        yield Label("Picker")
        yield Input(self.ctx.login_hint or "", placeholder="picker.kor.1", id="login")
        yield Label("PIN")
        yield Input(password=True, placeholder="••••", id="pin")

    def accepted(self, user: UserPublic) -> None:
        store = self.value("store").upper()
        if user.role not in STAFF:
            self.error(f"{user.login} is not store staff")
            return
        if user.store_id and store and user.store_id != store:
            self.error(f"{user.login} works at {user.store_id}, not {store}")
            return
        if not (store or user.store_id):
            self.error("Enter the store")
            return
        self.post_message(LoggedIn(store or str(user.store_id)))
