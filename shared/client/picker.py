"""The picker terminal's client: the store's queue, claiming, scanning, shorts, packing."""

from __future__ import annotations

import uuid

from shared.client.base import ApiClient
from shared.schemas.picking import (
    PackRequest,
    PackResult,
    PickList,
    PickTaskSummary,
    ScanRequest,
    ScanResult,
    ShortPickRequest,
    ShortPickResult,
    SubstituteRequest,
)


class PickerClient(ApiClient):
    async def queue(self, store_id: str) -> list[PickTaskSummary]:
        """Tasks waiting or being picked at ``store_id``, most urgent (SLA) first."""
        return await self._get_list(f"/v1/picking/stores/{store_id}/queue", PickTaskSummary)

    async def claim(self) -> PickList:
        """Claim the most urgent waiting task (or get back this picker's unfinished one)."""
        return await self._send("POST", "/v1/picking/claim", PickList)

    async def pick_list(self, order_id: uuid.UUID | str) -> PickList:
        return await self._get(f"/v1/picking/tasks/{order_id}", PickList)

    async def scan(self, order_id: uuid.UUID | str, *, scan_id: str, code: str) -> ScanResult:
        """Count one scanned unit; resending the same ``scan_id`` counts it once."""
        body = ScanRequest(scan_id=scan_id, code=code)
        return await self._send("POST", f"/v1/picking/tasks/{order_id}/scans", ScanResult, body)

    async def short_pick(
        self, order_id: uuid.UUID | str, *, sku_id: str, found_qty: int, reason: str = "missing"
    ) -> ShortPickResult:
        body = ShortPickRequest(sku_id=sku_id, found_qty=found_qty, reason=reason)
        path = f"/v1/picking/tasks/{order_id}/short"
        return await self._send("POST", path, ShortPickResult, body)

    async def substitute(
        self, order_id: uuid.UUID | str, *, sku_id: str, substitute_sku: str, quantity: int
    ) -> PickList:
        body = SubstituteRequest(sku_id=sku_id, substitute_sku=substitute_sku, quantity=quantity)
        return await self._send("POST", f"/v1/picking/tasks/{order_id}/substitute", PickList, body)

    async def pack(self, order_id: uuid.UUID | str, *, bag_count: int) -> PackResult:
        body = PackRequest(bag_count=bag_count)
        return await self._send("POST", f"/v1/picking/tasks/{order_id}/pack", PackResult, body)
