"""Inventory domain errors (stable codes the apps branch on)."""

from __future__ import annotations

from server.kit.errors import Conflict, DomainError, NotFound


class InsufficientStock(Conflict):
    code, title = "insufficient_stock", "Not enough stock"

    def __init__(self, short: list[dict[str, object]]) -> None:
        skus = ", ".join(str(s["sku_id"]) for s in short)
        super().__init__(f"not enough stock for: {skus}", lines=short)
        self.short = short


class HoldNotActive(Conflict):
    code, title = "hold_not_active", "Reservation is not active"


class UnknownSku(NotFound):
    code, title = "sku_not_found", "Unknown SKU"


class StoreNotFound(NotFound):
    code, title = "store_not_found", "Unknown store"


class StaleVersion(Conflict):
    code, title = "stale_version", "Stock changed since it was read"


class StockBucketShort(Conflict):
    code, title = "insufficient_stock", "Not enough stock in that bucket"


class StoreNotReady(DomainError):
    """Redis has not (or no longer) got this store's stock; the reconciler must load it."""

    status, code, title = 503, "inventory_loading", "Inventory is being loaded"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": "1"}
