"""The control tower: a city manager's live view of stores, orders, riders and alerts, and
the actions a manager takes from it (``control_tower.actions``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import tzinfo

from textual import work
from textual.reactive import reactive

from control_tower.actions import ManagerActions
from control_tower.api import OpsApi
from control_tower.context import TowerContext
from control_tower.feed import FeedRefused, OpsFeed
from control_tower.messages import FeedReceived, FeedState, FeedStopped, LoggedIn
from control_tower.screens.alerts import AlertsScreen
from control_tower.screens.base import LiveScreen
from control_tower.screens.help import HelpScreen
from control_tower.screens.login import LoginScreen
from control_tower.screens.map import MapScreen
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.stages import StagesScreen
from control_tower.state import CityView, FeedPayload
from qc_tui.api import DEFAULT_SERVER, describe
from qc_tui.app import ClosingApp
from shared.client import ApiError, ConnectionLost, ManagerClient
from shared.enums import Role

MANAGERS = {Role.MANAGER, Role.ADMIN}


class ControlTowerApp(ClosingApp):
    CSS_PATH = "control_tower.tcss"
    TITLE = "qc control tower"
    ENABLE_COMMAND_PALETTE = False

    # "connecting" until the first snapshot, then "up" / "down"; "stopped" once refused
    link_state: reactive[str] = reactive("connecting")
    link_detail: reactive[str] = reactive("")

    def __init__(
        self,
        *,
        server_url: str = DEFAULT_SERVER,
        city: str | None = None,
        login: str | None = None,
        password: str | None = None,
        token: str | None = None,
        client: OpsApi | None = None,
        tz: tzinfo | None = None,  # times are shown in it (None: the city's zone)
        monotonic: Callable[[], float] = time.monotonic,
        feed: bool = True,
        retry_base_s: float = 0.5,
        retry_max_s: float = 15.0,
        notes: Mapping[str, str] | None = None,  # the help screen's "join the demo" lines
    ) -> None:
        super().__init__()
        self.client: OpsApi = (
            client if client is not None else ManagerClient(server_url, token=token)
        )
        if token is not None:
            self.client.token = token
        self.requested_city = city.upper() if city else None
        self.login_hint = login
        self.password = password
        self.use_feed = feed
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.ctx = TowerContext(
            client=self.client, chosen_tz=tz, monotonic=monotonic, city_id=self.requested_city or ""
        )
        self.ctx.actions = ManagerActions(
            self.ctx, self, shown=self.show_city, audited=self._audit_changed
        )
        self.feed: OpsFeed | None = None
        self.notes = dict(notes or {})

    @property
    def view(self) -> CityView:
        return self.ctx.view

    @property
    def city_id(self) -> str:
        return self.ctx.city_id

    def timer_clock(self) -> float:
        return self.ctx.timer_clock()

    # --- start-up and identity ------------------------------------------------------
    def login_screen(self, *, error: str = "", secret: str | None = None) -> LoginScreen:
        return LoginScreen(
            self.ctx, login=self.login_hint, city=self.requested_city, error=error, secret=secret
        )

    def on_mount(self) -> None:
        if self.client.token and self.client.user is not None:
            problem = self.logged_in(self.requested_city)
            if problem:
                self.push_screen(self.login_screen(error=problem))
        elif self.client.token:
            self.resume_session()
        else:
            self.push_screen(self.login_screen(secret=self.password))

    async def on_unmount(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        self.workers.cancel_all()  # no call in flight on the client as it closes
        await self.client.aclose()

    @work(exclusive=True, group="login")
    async def resume_session(self) -> None:
        """Started with a token: find out whose it is, then open the city."""
        try:
            self.client.user = await self.client.me()
        except ApiError as exc:
            self.client.token = None
            reason = "cannot reach the server" if isinstance(exc, ConnectionLost) else describe(exc)
            self.push_screen(self.login_screen(error=f"Could not use the token: {reason}"))
            return
        problem = self.logged_in(self.requested_city)
        if problem:
            self.push_screen(self.login_screen(error=problem))

    def on_logged_in(self, message: LoggedIn) -> None:
        problem = self.logged_in(message.city)
        if problem and isinstance(self.screen, LoginScreen):
            self.screen.error(problem)

    def logged_in(self, city: str | None) -> str | None:
        """Open the overview for ``city`` (default: the manager's own). Returns what is
        wrong instead when this user cannot watch a city."""
        user = self.client.user
        if user is None:
            return "Not logged in"
        if user.role not in MANAGERS:
            self.client.token = None
            self.client.user = None
            return f"{user.login} is not a city manager"
        target = city or user.city_id
        if not target:
            return "Enter the city to watch"
        self.ctx.city_id = target.upper()
        self.requested_city = city
        self.ctx.view = CityView()
        self.link_state, self.link_detail = "connecting", ""
        overview = OverviewScreen(self.ctx)
        if isinstance(self.screen, LoginScreen):
            self.switch_screen(overview)
        else:
            self.push_screen(overview)
        if self.use_feed:
            self.run_feed()
        return None

    def back_to_login(self, error: str) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if len(self.screen_stack) == 2:
            self.switch_screen(self.login_screen(error=error))
        else:
            self.push_screen(self.login_screen(error=error))

    # --- the feed -------------------------------------------------------------------
    def feed_url(self) -> str | None:
        if not self.client.token or not self.ctx.city_id:
            return None
        return self.client.ops_socket_url(self.ctx.city_id)

    @work(exclusive=True, group="feed")
    async def run_feed(self) -> None:
        self.feed = OpsFeed(
            self.feed_url,
            on_message=self._feed_message,
            on_state=self._feed_state,
            base_delay=self.retry_base_s,
            max_delay=self.retry_max_s,
        )
        try:
            await self.feed.run()
        except FeedRefused as exc:
            self.post_message(FeedStopped(exc.code, exc.reason))

    def _feed_message(self, payload: FeedPayload) -> None:
        self.post_message(FeedReceived(payload))

    def _feed_state(self, up: bool, detail: str) -> None:
        self.post_message(FeedState(up, detail))

    def on_feed_received(self, message: FeedReceived) -> None:
        changed = self.ctx.view.apply(message.payload)
        if changed:
            self.show_city(changed)

    def on_feed_state(self, message: FeedState) -> None:
        self.link_detail = message.detail
        self.link_state = "up" if message.up else "down"

    def on_feed_stopped(self, message: FeedStopped) -> None:
        self.link_state = "stopped"
        if message.code == 4403:
            error = f"Not allowed to watch city {self.ctx.city_id}: {message.reason}"
        else:
            error = "Session expired or refused: log in again"
        self.client.token = None
        self.back_to_login(error)

    def show_city(self, changed: frozenset[str]) -> None:
        """Every live screen in the stack redraws what changed (in place)."""
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.show(changed)

    def _audit_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, AlertsScreen):
                screen.load_audit()

    # --- navigation -----------------------------------------------------------------
    def action_open_map(self) -> None:
        self.push_screen(MapScreen(self.ctx))

    def action_open_alerts(self) -> None:
        self.push_screen(AlertsScreen(self.ctx))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.notes))

    def action_open_stages(self) -> None:
        self.push_screen(StagesScreen(self.ctx))
