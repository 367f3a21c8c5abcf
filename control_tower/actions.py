"""The manager's actions (pause a store, change its radius, acknowledge an alert, reassign
or cancel an order, move a rider to another store, stop a flash sale): each asks in dialogs, makes one API call, and shows
what changed. One runs at a time (an exclusive worker of the app)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from rich.text import Text
from textual.app import App

from control_tower.context import TowerContext
from control_tower.screens.dialogs import (
    CANCEL_REASONS,
    FLASH_STOP_REASONS,
    MOVE_REASONS,
    PAUSE_REASONS,
    REASSIGN_REASONS,
    RadiusScreen,
    ReasonScreen,
)
from control_tower.widgets.pipeline import ID_CHARS
from control_tower.widgets.style import LEVEL_COLOUR, format_age, sla_level
from qc_tui.api import describe
from qc_tui.dialogs import ChoiceScreen, ConfirmScreen
from shared.client import ApiError
from shared.geo import LatLng, haversine_m
from shared.schemas.ops import OpsOrder

T = TypeVar("T")


class ManagerActions:
    def __init__(
        self,
        ctx: TowerContext,
        app: App[None],
        *,
        shown: Callable[[frozenset[str]], None],
        audited: Callable[[], None],
    ) -> None:
        self.ctx = ctx
        self.app = app  # runs the dialogs and the worker
        self._shown = shown  # every live screen redraws what changed
        self._audited = audited  # the audit log has a new entry

    def _run(self, action: Coroutine[Any, Any, None]) -> None:
        self.app.run_worker(action, group="action", exclusive=True)

    def acknowledge(self, alert_id: str) -> None:
        self._run(self._acknowledge(alert_id))

    def pause_or_resume(self, store_id: str) -> None:
        self._run(self._pause_or_resume(store_id))

    def change_radius(self, store_id: str) -> None:
        self._run(self._change_radius(store_id))

    def reassign(self, store_id: str) -> None:
        self._run(self._reassign(store_id))

    def cancel_order(self, store_id: str) -> None:
        self._run(self._cancel_order(store_id))

    def move_rider(self, store_id: str) -> None:
        self._run(self._move_rider(store_id))

    def stop_flash_sale(self) -> None:
        self._run(self._stop_flash_sale())

    async def _call(self, request: Awaitable[T], *, failed: str) -> T | None:
        """The action's one API call; a refusal is said (``failed: why``) and answers None."""
        try:
            return await request
        except ApiError as exc:
            self.app.notify(f"{failed}: {describe(exc)}", severity="error", timeout=8)
            return None

    def _done(self, text: str, changed: frozenset[str] | None = None) -> None:
        if changed is not None:
            self._shown(changed)
        self.app.notify(text)
        self._audited()

    async def _acknowledge(self, alert_id: str) -> None:
        alert = await self._call(
            self.ctx.client.acknowledge_alert(alert_id), failed="Could not acknowledge"
        )
        if alert is not None:
            self._done("Alert acknowledged", self.ctx.view.put_alert(alert))

    async def _pause_or_resume(self, store_id: str) -> None:
        store = self.ctx.view.stores.get(store_id)
        if store is None:
            self.app.bell()
            return
        if store.is_operational:
            reason = await self.app.push_screen_wait(
                ReasonScreen(
                    f"Pause {store.name} ({store_id})?",
                    "New orders stop going to this store; orders in hand carry on.",
                    suggestions=PAUSE_REASONS,
                    action="pause the store",
                )
            )
            if reason is None:
                return
            request = self.ctx.client.pause_store(store_id, reason=reason)
            done = f"{store.name} paused"
        else:
            why = f"Paused: {store.paused_reason}" if store.paused_reason else ""
            if not await self.app.push_screen_wait(
                ConfirmScreen(f"Resume {store.name} ({store_id})?", why)
            ):
                return
            request = self.ctx.client.resume_store(store_id)
            done = f"{store.name} is live again"
        result = await self._call(request, failed=f"Could not change {store_id}")
        if result is not None:
            self._done(done, self.ctx.view.put_store_settings(result))

    async def _change_radius(self, store_id: str) -> None:
        store = self.ctx.view.stores.get(store_id)
        if store is None:
            self.app.bell()
            return
        answer = await self.app.push_screen_wait(RadiusScreen(store.name, store.service_radius_m))
        if answer is None:
            return
        radius, reason = answer
        result = await self._call(
            self.ctx.client.set_store_radius(store_id, service_radius_m=radius, reason=reason),
            failed=f"Could not change the radius of {store_id}",
        )
        if result is not None:
            self._done(
                f"{store.name}: radius {result.service_radius_m:,} m",
                self.ctx.view.put_store_settings(result),
            )

    def _order_choices(self, store_id: str, orders: list[OpsOrder]) -> list[tuple[str, Text]]:
        riders = self.ctx.view.riders
        slas = {o.order_id: o.sla_s for o in self.ctx.view.pipeline(store_id)}
        choices = []
        for order in orders:
            order_id = str(order.order_id)
            age = self.ctx.view.order_age_s(order_id)
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

    async def _reassign(self, store_id: str) -> None:
        order_id = await self.app.push_screen_wait(
            ChoiceScreen(
                f"Reassign which order of {store_id}?",
                self._order_choices(store_id, self.ctx.view.reassignable_orders(store_id)),
                empty="No order waiting at this store",
            )
        )
        order = self.ctx.view.orders.get(order_id) if order_id else None
        if order_id is None or order is None:
            return
        store = self.ctx.view.stores.get(store_id)
        riders = []
        for rider in self.ctx.view.reassign_candidates(order):
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(rider.name, style="bold")
            if rider.idle_s is not None:
                line.append(f" · idle {format_age(rider.idle_s)}")
            if store is not None and rider.lat is not None and rider.lng is not None:
                away = haversine_m(LatLng(store.lat, store.lng), LatLng(rider.lat, rider.lng))
                line.append(f" · {away / 1000:.1f} km from the store", style="dim")
            riders.append((str(rider.rider_id), line))
        rider_id = await self.app.push_screen_wait(
            ChoiceScreen(
                f"Give order {order_id[:ID_CHARS]} to which rider?",
                riders,
                empty="No idle rider at this store",
            )
        )
        if rider_id is None:
            return
        reason = await self.app.push_screen_wait(
            ReasonScreen(
                f"Reassign {order_id[:ID_CHARS]} to {self.ctx.view.riders[rider_id].name}",
                suggestions=REASSIGN_REASONS,
                action="reassign",
            )
        )
        if reason is None:
            return
        reassigned = await self._call(
            self.ctx.client.reassign_order(order_id, rider_id=uuid.UUID(rider_id), reason=reason),
            failed=f"Could not reassign {order_id[:ID_CHARS]}",
        )
        if reassigned is not None:
            self._done(f"Order {order_id[:ID_CHARS]} reassigned")

    async def _cancel_order(self, store_id: str) -> None:
        order_id = await self.app.push_screen_wait(
            ChoiceScreen(
                f"Cancel which order of {store_id}?",
                self._order_choices(store_id, self.ctx.view.store_orders(store_id)),
                empty="No active orders at this store",
            )
        )
        if order_id is None:
            return
        reason = await self.app.push_screen_wait(
            ReasonScreen(
                f"Cancel order {order_id[:ID_CHARS]}?",
                "The customer is refunded and held stock goes back on the shelf.",
                suggestions=CANCEL_REASONS,
                action="cancel the order",
            )
        )
        if reason is None:
            return
        cancelled = await self._call(
            self.ctx.client.ops_cancel_order(order_id, reason=reason),
            failed=f"Could not cancel {order_id[:ID_CHARS]}",
        )
        if cancelled is not None:
            self._done(f"Order {order_id[:ID_CHARS]} cancelled")

    async def _move_rider(self, store_id: str) -> None:
        view = self.ctx.view
        riders = []
        for free in view.movable_riders(store_id):
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(free.name, style="bold")
            line.append(f" · {free.status.lower()}")
            if free.idle_s is not None:
                line.append(f" {format_age(free.idle_s)}")
            riders.append((str(free.rider_id), line))
        rider_id = await self.app.push_screen_wait(
            ChoiceScreen(
                f"Move which rider of {store_id}?",
                riders,
                empty="No free rider at this store (one on a trip moves once it is done)",
            )
        )
        rider = view.riders.get(rider_id) if rider_id else None
        if rider_id is None or rider is None:
            return
        stores = []
        for store in sorted(view.stores.values(), key=lambda s: -s.risk):
            if store.store_id == store_id:
                continue
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{store.store_id} {store.name}", style="bold")
            line.append(f" · risk {store.risk:.0%} · riders {store.idle_riders} idle")
            line.append(f" / {store.busy_riders} busy", style="dim")
            stores.append((store.store_id, line))
        target = await self.app.push_screen_wait(
            ChoiceScreen(f"Send {rider.name} to which store?", stores, empty="No other store")
        )
        if target is None:
            return
        reason = await self.app.push_screen_wait(
            ReasonScreen(
                f"Move {rider.name} from {store_id} to {target}?",
                "The rider works for that store from now on.",
                suggestions=MOVE_REASONS,
                action="move the rider",
            )
        )
        if reason is None:
            return
        moved = await self._call(
            self.ctx.client.move_rider(rider_id, store_id=target, reason=reason),
            failed=f"Could not move {rider.name}",
        )
        if moved is not None:
            self._done(f"{rider.name} now works for {target}")

    async def _stop_flash_sale(self) -> None:
        sales = self.ctx.view.flash_sales(open_only=True)
        choices = [
            (
                str(s.sale_id),
                f"{s.sku_id} · {s.status.lower()} · waiting {s.waiting} · sold {s.sold}",
            )
            for s in sales
        ]
        sale_id = await self.app.push_screen_wait(
            ChoiceScreen("Stop which flash sale?", choices, empty="No flash sale is running")
        )
        sale = next((s for s in sales if str(s.sale_id) == sale_id), None)
        if sale is None:
            return
        reason = await self.app.push_screen_wait(
            ReasonScreen(
                f"Stop the flash sale of {sale.sku_id}?",
                f"{sale.waiting} waiting and {sale.in_checkout} in checkout are turned away.",
                suggestions=FLASH_STOP_REASONS,
                action="stop the sale",
            )
        )
        if reason is None:
            return
        stopped = await self._call(
            self.ctx.client.stop_flash_sale(sale.sale_id, reason=reason),
            failed="Could not stop the sale",
        )
        if stopped is not None:
            self._done(f"Flash sale of {sale.sku_id} stopped")
