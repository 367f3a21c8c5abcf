"""The city manager's client (the control tower): the live feed, alerts, store and order
overrides, flash-sale stops, the audit log and a store's staff."""

from __future__ import annotations

import uuid
from typing import Literal

from shared.client.base import ApiClient
from shared.schemas.flash import FlashSalePublic, FlashSaleStop
from shared.schemas.identity import UserPublic
from shared.schemas.ops import (
    AlertPublic,
    AuditEntry,
    MoveRider,
    OpsCancelOrder,
    OpsSnapshot,
    PauseStore,
    ReassignOrder,
    RiderMoved,
    StageBreakdown,
    StoreOps,
    StoreRadius,
    StoreSubstitution,
)
from shared.schemas.orders import OrderPublic


class ManagerClient(ApiClient):
    def ops_socket_url(self, city_id: str) -> str:
        """The ``/ws/ops`` feed URL: a snapshot, then the changes."""
        return self._socket_url("/ws/ops", city=city_id)

    async def ops_snapshot(self, city_id: str) -> OpsSnapshot:
        return await self._get("/v1/ops/snapshot", OpsSnapshot, city=city_id)

    async def acknowledge_alert(self, alert_id: uuid.UUID | str) -> AlertPublic:
        return await self._send("POST", f"/v1/ops/alerts/{alert_id}/ack", AlertPublic)

    async def pause_store(self, store_id: str, *, reason: str) -> StoreOps:
        body = PauseStore(reason=reason)
        return await self._send("POST", f"/v1/ops/stores/{store_id}/pause", StoreOps, body)

    async def resume_store(self, store_id: str) -> StoreOps:
        return await self._send("POST", f"/v1/ops/stores/{store_id}/resume", StoreOps)

    async def set_store_radius(
        self, store_id: str, *, service_radius_m: int, reason: str | None = None
    ) -> StoreOps:
        body = StoreRadius(service_radius_m=service_radius_m, reason=reason)
        return await self._send("PUT", f"/v1/ops/stores/{store_id}/radius", StoreOps, body)

    async def set_store_substitution(
        self,
        store_id: str,
        *,
        policy: Literal["substitute", "ask", "never"],
        fallback: Literal["substitute", "refund"] = "substitute",
        reason: str | None = None,
    ) -> StoreOps:
        body = StoreSubstitution(policy=policy, fallback=fallback, reason=reason)
        return await self._send("PUT", f"/v1/ops/stores/{store_id}/substitution", StoreOps, body)

    async def reassign_order(
        self, order_id: uuid.UUID | str, *, rider_id: uuid.UUID | str, reason: str
    ) -> OrderPublic:
        body = ReassignOrder(rider_id=uuid.UUID(str(rider_id)), reason=reason)
        path = f"/v1/ops/orders/{order_id}/reassign"
        return await self._send("POST", path, OrderPublic, body)

    async def move_rider(
        self, rider_id: uuid.UUID | str, *, store_id: str, reason: str
    ) -> RiderMoved:
        body = MoveRider(store_id=store_id, reason=reason)
        return await self._send("POST", f"/v1/ops/riders/{rider_id}/move", RiderMoved, body)

    async def ops_cancel_order(self, order_id: uuid.UUID | str, *, reason: str) -> OrderPublic:
        body = OpsCancelOrder(reason=reason)
        return await self._send("POST", f"/v1/ops/orders/{order_id}/cancel", OrderPublic, body)

    async def stop_flash_sale(self, sale_id: uuid.UUID | str, *, reason: str) -> FlashSalePublic:
        """End a flash sale now (the manager's stop button): unsold units go back."""
        body = FlashSaleStop(reason=reason)
        return await self._send("POST", f"/v1/flash-sales/{sale_id}/stop", FlashSalePublic, body)

    async def stage_breakdown(self, city_id: str, *, window_min: int = 60) -> StageBreakdown:
        """Per store, p50/p90 of each stage of an order over the last ``window_min``."""
        return await self._get(
            "/v1/ops/stages", StageBreakdown, city=city_id, window_min=window_min
        )

    async def audit_log(self, city_id: str, *, limit: int = 100) -> list[AuditEntry]:
        return await self._get_list("/v1/ops/audit", AuditEntry, city=city_id, limit=limit)

    async def store_staff(self, store_id: str) -> list[UserPublic]:
        """The pickers of a store."""
        return await self._get_list(f"/v1/stores/{store_id}/staff", UserPublic)
