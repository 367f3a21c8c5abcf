"""The login screen every terminal starts with: a login, a secret, and what the app adds.
A subclass lays out its own fields (``fields``) and decides what a good login opens
(``accepted``); the base sends the login and says what went wrong."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from qc_tui.api import SessionApi, describe
from qc_tui.banner import ConnectionBanner
from qc_tui.connection import Connection
from shared.client import ApiError, ConnectionLost
from shared.schemas.identity import UserPublic


class LoginScreen(Screen[None]):
    # priority, as Textual's hidden ctrl+q is: else that one hides this from the footer
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit", priority=True)]
    HEADING = "qc"
    SECRET = "pin"  # the id of the secret's field
    WRONG = "Wrong login or PIN"
    MISSING = "Enter your login and PIN"

    def __init__(
        self, client: SessionApi, *, connection: Connection | None = None, error: str = ""
    ) -> None:
        super().__init__()
        self.client = client
        self.connection = connection  # None: the app shows its link some other way
        self.initial_error = error

    def compose(self) -> ComposeResult:
        if self.connection is not None:
            yield ConnectionBanner()
        with Vertical(id="login-box"):
            yield Static(self.HEADING, id="login-title")
            yield Static(f"server {self.client.base_url}", classes="muted", markup=False)
            yield from self.fields()
            yield Static(self.initial_error, id="login-error", markup=False)
        yield Footer()

    def fields(self) -> ComposeResult:
        """The labelled inputs, the login's (id ``login``) and the secret's among them."""
        raise NotImplementedError

    def on_mount(self) -> None:
        first_empty = next((i for i in self.query(Input) if not i.value), None)
        (first_empty or self.secret_input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.keep_typing(event.input):
            self.focus_next()
            return
        login = self.value("login")
        secret = self.secret_input.value
        if not login or not secret:
            self.error(self.MISSING)
            return
        self.error("Logging in…")
        self.log_in(login, secret)

    def keep_typing(self, field: Input) -> bool:
        """Enter in this field moves on to the next instead of logging in."""
        return field.id != self.SECRET

    @property
    def secret_input(self) -> Input:
        return self.query_one(f"#{self.SECRET}", Input)

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(text)

    @work(exclusive=True, group="login")
    async def log_in(self, login: str, secret: str) -> None:
        try:
            result = await self.client.login(login, secret)
        except ConnectionLost as exc:
            if self.connection is not None:
                self.connection.lost(exc)
            self.error("Cannot reach the server — check the network and try again")
            return
        except ApiError as exc:
            wrong = exc.code == "invalid_credentials"
            self.error(self.WRONG if wrong else describe(exc))
            self.secret_input.clear()
            self.secret_input.focus()
            return
        if self.connection is not None:
            self.connection.answered()
        self.accepted(result.user)

    def accepted(self, user: UserPublic) -> None:
        """The server took the login: check the user is one this app serves, and go on."""
        raise NotImplementedError
