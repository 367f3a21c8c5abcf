"""What the picker app needs from the server: ``shared.client.PickerClient`` fits this protocol
structurally; tests may hand the app a fake with the same methods."""

from __future__ import annotations

import uuid
from typing import Protocol

from qc_tui.api import HealthApi
from shared.schemas.picking import (
    PackResult,
    PickList,
    PickTaskSummary,
    ScanResult,
    ShortPickResult,
)

OrderId = uuid.UUID | str


class PickingApi(HealthApi, Protocol):
    async def queue(self, store_id: str) -> list[PickTaskSummary]: ...

    async def claim(self) -> PickList: ...

    async def pick_list(self, order_id: OrderId) -> PickList: ...

    async def scan(self, order_id: OrderId, *, scan_id: str, code: str) -> ScanResult: ...

    async def short_pick(
        self, order_id: OrderId, *, sku_id: str, found_qty: int, reason: str = "missing"
    ) -> ShortPickResult: ...

    async def substitute(
        self, order_id: OrderId, *, sku_id: str, substitute_sku: str, quantity: int
    ) -> PickList: ...

    async def pack(self, order_id: OrderId, *, bag_count: int) -> PackResult: ...
