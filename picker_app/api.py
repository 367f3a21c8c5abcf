"""What the picker app needs from the server: ``shared.client.QcClient`` fits this protocol
structurally; tests may hand the app a fake with the same methods."""

from __future__ import annotations

import uuid
from typing import Protocol

from shared.client import ApiError, ConnectionLost
from shared.schemas import (
    Health,
    PackResult,
    PickList,
    PickTaskSummary,
    ScanResult,
    ShortPickResult,
    TokenResponse,
    UserPublic,
)

OrderId = uuid.UUID | str

DEFAULT_SERVER = "http://127.0.0.1:8000"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between retries; then the last, for ever


class PickingApi(Protocol):
    base_url: str
    token: str | None
    user: UserPublic | None

    async def login(self, login: str, secret: str) -> TokenResponse: ...

    async def health(self) -> Health: ...

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

    async def aclose(self) -> None: ...


def is_transient(exc: ApiError) -> bool:
    """Worth retrying unchanged: the server was unreachable, overloaded or failing, or the
    session needs renewing. Anything else is the server's final answer."""
    return isinstance(exc, ConnectionLost) or exc.status >= 500 or exc.status in (401, 429)


def describe(exc: ApiError) -> str:
    if isinstance(exc, ConnectionLost):
        return "server unreachable"
    return exc.detail or exc.code
