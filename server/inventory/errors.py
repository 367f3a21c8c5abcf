"""Inventory domain errors (stable codes the apps branch on)."""

from __future__ import annotations

from server.kit.errors import Conflict, DomainError, NotFound

# Why a line cannot have what it asks, named apart: "out of stock" meant all three.
SOLD_OUT = "sold_out"  # none on the shelf: nothing left to sell and nothing held
HELD = "held"  # none free: what is left is held by other carts and orders (may come back)
SHORT = "short"  # some left, fewer than asked
REASON_WORDS = {
    SOLD_OUT: "sold out",
    HELD: "none free now (the rest is held in other carts and orders; it may come back)",
    SHORT: "fewer left than asked",
}


def short_line(sku_id: str, requested_more: int, available: int, held: int) -> dict[str, object]:
    """One refused line with its ``reason`` (``SOLD_OUT``, ``HELD`` or ``SHORT``)."""
    reason = SHORT if available > 0 else HELD if held > 0 else SOLD_OUT
    return {
        "sku_id": sku_id,
        "requested_more": requested_more,
        "available": available,
        "held": held,
        "reason": reason,
    }


class InsufficientStock(Conflict):
    """409 ``insufficient_stock``; each line says why (``reason``) when the caller knew."""

    code, title = "insufficient_stock", "Not enough stock"

    def __init__(self, short: list[dict[str, object]]) -> None:
        by_reason: dict[str, list[str]] = {}
        for line in short:
            words = REASON_WORDS.get(str(line.get("reason")), "not enough stock")
            by_reason.setdefault(words, []).append(str(line["sku_id"]))
        detail = "; ".join(f"{words}: {', '.join(skus)}" for words, skus in by_reason.items())
        super().__init__(detail, lines=short)
        self.short = short


class HoldNotActive(Conflict):
    code, title = "hold_not_active", "Reservation is not active"


class HoldChanged(HoldNotActive):
    """A move was given lines the hold no longer has: a line changed after the caller
    read the hold (a cart's lines take no lock against its checkout)."""

    code, title = "hold_changed", "The reservation changed while it was being moved"


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
