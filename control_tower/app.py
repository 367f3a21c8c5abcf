"""The control tower: a city manager's live view of stores, orders, riders and alerts, and
the actions a manager takes from it (pause a store, change its radius, acknowledge an
alert, reassign or cancel an order, stop a flash sale)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import tzinfo

from rich.text import Text
from textual import work
from textual.app import App
from textual.reactive import reactive

from control_tower.api import DEFAULT_SERVER, OpsApi, describe
from control_tower.feed import FeedRefused, OpsFeed
from control_tower.messages import FeedReceived, FeedState, FeedStopped
from control_tower.screens.alerts import AlertsScreen
from control_tower.screens.base import LiveScreen
from control_tower.screens.dialogs import (
    CANCEL_REASONS,
    FLASH_STOP_REASONS,
    PAUSE_REASONS,
    REASSIGN_REASONS,
    ChoiceScreen,
    ConfirmScreen,
    RadiusScreen,
    ReasonScreen,
)
from control_tower.screens.login import LoginScreen
from control_tower.screens.map import MapScreen
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.store import StoreScreen
from control_tower.state import CityView
from control_tower.widgets.pipeline import ID_CHARS
from control_tower.widgets.style import LEVEL_COLOUR, format_age, sla_level
from shared.client import ApiError, ConnectionLost, ManagerClient
from shared.enums import Role
from shared.geo import LatLng, haversine_m
from shared.schemas import OpsOrder

MANAGERS = {Role.MANAGER, Role.ADMIN}


class ControlTowerApp(App[None]):
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
        tz: tzinfo | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        feed: bool = True,
        retry_base_s: float = 0.5,
        retry_max_s: float = 15.0,
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
        self.tz = tz  # the zone times are shown in (None: this machine's)
        self.monotonic = monotonic  # the pipeline timers' clock; tests and snapshots fix it
        self.use_feed = feed
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.city_id = self.requested_city or ""
        self.view = CityView()
        self.feed: OpsFeed | None = None

    def timer_clock(self) -> float:
        """Seconds on the server's clock, counted locally: the pipeline timers run as
        fast as the (possibly sped-up) city does between feed updates."""
        return self.monotonic() * self.view.clock_speed

    # --- start-up and identity ------------------------------------------------------
    def on_mount(self) -> None:
        if self.client.token and self.client.user is not None:
            problem = self.logged_in(self.requested_city)
            if problem:
                self.push_screen(LoginScreen(error=problem))
        elif self.client.token:
            self.resume_session()
        else:
            self.push_screen(LoginScreen(secret=self.password))

    async def on_unmount(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        await self.client.aclose()

    @work(exclusive=True, group="login")
    async def resume_session(self) -> None:
        """Started with a token: find out whose it is, then open the city."""
        try:
            self.client.user = await self.client.me()
        except ApiError as exc:
            self.client.token = None
            reason = "cannot reach the server" if isinstance(exc, ConnectionLost) else describe(exc)
            self.push_screen(LoginScreen(error=f"Could not use the token: {reason}"))
            return
        problem = self.logged_in(self.requested_city)
        if problem:
            self.push_screen(LoginScreen(error=problem))

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
        self.city_id = target.upper()
        self.requested_city = city
        self.view = CityView()
        self.link_state, self.link_detail = "connecting", ""
        overview = OverviewScreen()
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
            self.switch_screen(LoginScreen(error=error))
        else:
            self.push_screen(LoginScreen(error=error))

    # --- the feed -------------------------------------------------------------------
    def feed_url(self) -> str | None:
        if not self.client.token or not self.city_id:
            return None
        return self.client.ops_socket_url(self.city_id)

    @work(exclusive=True, group="feed")
    async def run_feed(self) -> None:
        self.feed = OpsFeed(
            self.feed_url,
            on_message=lambda payload: self.post_message(FeedReceived(payload)),
            on_state=lambda up, detail: self.post_message(FeedState(up, detail)),
            base_delay=self.retry_base_s,
            max_delay=self.retry_max_s,
        )
        try:
            await self.feed.run()
        except FeedRefused as exc:
            self.post_message(FeedStopped(exc.code, exc.reason))

    def on_feed_received(self, message: FeedReceived) -> None:
        changed = self.view.apply(message.payload)
        if changed:
            self.show_city(changed)

    def on_feed_state(self, message: FeedState) -> None:
        self.link_detail = message.detail
        self.link_state = "up" if message.up else "down"

    def on_feed_stopped(self, message: FeedStopped) -> None:
        self.link_state = "stopped"
        if message.code == 4403:
            error = f"Not allowed to watch city {self.city_id}: {message.reason}"
        else:
            error = "Session expired or refused: log in again"
        self.client.token = None
        self.back_to_login(error)

    def show_city(self, changed: frozenset[str]) -> None:
        """Every live screen in the stack redraws what changed (in place)."""
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.show(changed)

    # --- navigation -----------------------------------------------------------------
    def open_store(self, store_id: str) -> None:
        self.push_screen(StoreScreen(store_id))

    def action_open_map(self) -> None:
        self.push_screen(MapScreen())

    def action_open_alerts(self) -> None:
        self.push_screen(AlertsScreen())

    # --- actions (each an exclusive worker: dialogs, then one API call) -------------
    def _failed(self, what: str, exc: ApiError) -> None:
        self.notify(f"{what}: {describe(exc)}", severity="error", timeout=8)

    def _audit_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, AlertsScreen):
                screen.load_audit()

    @work(exclusive=True, group="action")
    async def acknowledge(self, alert_id: str) -> None:
        try:
            alert = await self.client.acknowledge_alert(alert_id)
        except ApiError as exc:
            self._failed("Could not acknowledge", exc)
            return
        self.show_city(self.view.put_alert(alert))
        self.notify("Alert acknowledged")
        self._audit_changed()

    @work(exclusive=True, group="action")
    async def pause_or_resume(self, store_id: str) -> None:
        store = self.view.stores.get(store_id)
        if store is None:
            self.bell()
            return
        try:
            if store.is_operational:
                reason = await self.push_screen_wait(
                    ReasonScreen(
                        f"Pause {store.name} ({store_id})?",
                        "New orders stop going to this store; orders in hand carry on.",
                        suggestions=PAUSE_REASONS,
                        action="pause the store",
                    )
                )
                if reason is None:
                    return
                result = await self.client.pause_store(store_id, reason=reason)
                done = f"{store.name} paused"
            else:
                why = f"Paused: {store.paused_reason}" if store.paused_reason else ""
                if not await self.push_screen_wait(
                    ConfirmScreen(f"Resume {store.name} ({store_id})?", why)
                ):
                    return
                result = await self.client.resume_store(store_id)
                done = f"{store.name} is live again"
        except ApiError as exc:
            self._failed(f"Could not change {store_id}", exc)
            return
        self.show_city(self.view.put_store_settings(result))
        self.notify(done)
        self._audit_changed()

    @work(exclusive=True, group="action")
    async def change_radius(self, store_id: str) -> None:
        store = self.view.stores.get(store_id)
        if store is None:
            self.bell()
            return
        answer = await self.push_screen_wait(RadiusScreen(store.name, store.service_radius_m))
        if answer is None:
            return
        radius, reason = answer
        try:
            result = await self.client.set_store_radius(
                store_id, service_radius_m=radius, reason=reason
            )
        except ApiError as exc:
            self._failed(f"Could not change the radius of {store_id}", exc)
            return
        self.show_city(self.view.put_store_settings(result))
        self.notify(f"{store.name}: radius {result.service_radius_m:,} m")
        self._audit_changed()

    def _order_choices(self, store_id: str, orders: list[OpsOrder]) -> list[tuple[str, Text]]:
        riders = self.view.riders
        slas = {o.order_id: o.sla_s for o in self.view.pipeline(store_id)}
        choices = []
        for order in orders:
            order_id = str(order.order_id)
            age = self.view.order_age_s(order_id)
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{order_id[:ID_CHARS]} ", style="bold")
            line.append(f"{order.status.lower():<18} ")
            sla = LEVEL_COLOUR[sla_level(age, slas[order_id])]
            line.append(f"{format_age(age):>5}", style=sla)
            if order.predicted_breach:
                line.append(" late", style=f"bold {sla}")
            rider = riders.get(str(order.rider_id)) if order.rider_id else None
            if rider is not None:
                line.append(f" · {rider.name}", style="dim")
            choices.append((order_id, line))
        return choices

    @work(exclusive=True, group="action")
    async def reassign(self, store_id: str) -> None:
        order_id = await self.push_screen_wait(
            ChoiceScreen(
                f"Reassign which order of {store_id}?",
                self._order_choices(store_id, self.view.reassignable_orders(store_id)),
                empty="No order waiting at this store",
            )
        )
        order = self.view.orders.get(order_id) if order_id else None
        if order is None:
            return
        store = self.view.stores.get(store_id)
        riders = []
        for rider in self.view.reassign_candidates(order):
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(rider.name, style="bold")
            if rider.idle_s is not None:
                line.append(f" · idle {format_age(rider.idle_s)}")
            if store is not None and rider.lat is not None and rider.lng is not None:
                away = haversine_m(LatLng(store.lat, store.lng), LatLng(rider.lat, rider.lng))
                line.append(f" · {away / 1000:.1f} km from the store", style="dim")
            riders.append((str(rider.rider_id), line))
        rider_id = await self.push_screen_wait(
            ChoiceScreen(
                f"Give order {order_id[:ID_CHARS]} to which rider?",
                riders,
                empty="No idle rider at this store",
            )
        )
        if rider_id is None:
            return
        reason = await self.push_screen_wait(
            ReasonScreen(
                f"Reassign {order_id[:ID_CHARS]} to {self.view.riders[rider_id].name}",
                suggestions=REASSIGN_REASONS,
                action="reassign",
            )
        )
        if reason is None:
            return
        try:
            await self.client.reassign_order(order_id, rider_id=uuid.UUID(rider_id), reason=reason)
        except ApiError as exc:
            self._failed(f"Could not reassign {order_id[:ID_CHARS]}", exc)
            return
        self.notify(f"Order {order_id[:ID_CHARS]} reassigned")
        self._audit_changed()

    @work(exclusive=True, group="action")
    async def cancel_order(self, store_id: str) -> None:
        order_id = await self.push_screen_wait(
            ChoiceScreen(
                f"Cancel which order of {store_id}?",
                self._order_choices(store_id, self.view.store_orders(store_id)),
                empty="No active orders at this store",
            )
        )
        if order_id is None:
            return
        reason = await self.push_screen_wait(
            ReasonScreen(
                f"Cancel order {order_id[:ID_CHARS]}?",
                "The customer is refunded and held stock goes back on the shelf.",
                suggestions=CANCEL_REASONS,
                action="cancel the order",
            )
        )
        if reason is None:
            return
        try:
            await self.client.ops_cancel_order(order_id, reason=reason)
        except ApiError as exc:
            self._failed(f"Could not cancel {order_id[:ID_CHARS]}", exc)
            return
        self.notify(f"Order {order_id[:ID_CHARS]} cancelled")
        self._audit_changed()

    @work(exclusive=True, group="action")
    async def stop_flash_sale(self) -> None:
        sales = self.view.flash_sales(open_only=True)
        choices = [
            (
                str(s.sale_id),
                f"{s.sku_id} · {s.status.lower()} · waiting {s.waiting} · sold {s.sold}",
            )
            for s in sales
        ]
        sale_id = await self.push_screen_wait(
            ChoiceScreen("Stop which flash sale?", choices, empty="No flash sale is running")
        )
        sale = next((s for s in sales if str(s.sale_id) == sale_id), None)
        if sale is None:
            return
        reason = await self.push_screen_wait(
            ReasonScreen(
                f"Stop the flash sale of {sale.sku_id}?",
                f"{sale.waiting} waiting and {sale.in_checkout} in checkout are turned away.",
                suggestions=FLASH_STOP_REASONS,
                action="stop the sale",
            )
        )
        if reason is None:
            return
        try:
            await self.client.stop_flash_sale(sale.sale_id, reason=reason)
        except ApiError as exc:
            self._failed("Could not stop the sale", exc)
            return
        self.notify(f"Flash sale of {sale.sku_id} stopped")
        self._audit_changed()
