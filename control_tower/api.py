"""What the control tower needs from the server: ``shared.client.ManagerClient`` fits this
protocol structurally; tests may hand the app a fake with the same methods."""

from __future__ import annotations

import uuid
from typing import Protocol

from qc_tui.api import SessionApi
from shared.schemas.flash import FlashSalePublic
from shared.schemas.identity import UserPublic
from shared.schemas.ops import AlertPublic, AuditEntry, RiderMoved, StageBreakdown, StoreOps
from shared.schemas.orders import OrderPublic

Id = uuid.UUID | str


class OpsApi(SessionApi, Protocol):
    async def me(self) -> UserPublic: ...

    def ops_socket_url(self, city_id: str) -> str: ...

    async def acknowledge_alert(self, alert_id: Id) -> AlertPublic: ...

    async def pause_store(self, store_id: str, *, reason: str) -> StoreOps: ...

    async def resume_store(self, store_id: str) -> StoreOps: ...

    async def set_store_radius(
        self, store_id: str, *, service_radius_m: int, reason: str | None = None
    ) -> StoreOps: ...

    async def reassign_order(self, order_id: Id, *, rider_id: Id, reason: str) -> OrderPublic: ...

    async def ops_cancel_order(self, order_id: Id, *, reason: str) -> OrderPublic: ...

    async def move_rider(self, rider_id: Id, *, store_id: str, reason: str) -> RiderMoved: ...

    async def stop_flash_sale(self, sale_id: Id, *, reason: str) -> FlashSalePublic: ...

    async def audit_log(self, city_id: str, *, limit: int = 100) -> list[AuditEntry]: ...

    async def stage_breakdown(self, city_id: str, *, window_min: int = 60) -> StageBreakdown: ...
