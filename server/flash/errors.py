"""The flash sale's errors: each a stable ``code`` the clients branch on."""

from __future__ import annotations

from server.kit.errors import Conflict, NotFound


class FlashSaleNotFound(NotFound):
    code, title = "flash_sale_not_found", "No such flash sale"


class FlashNotStarted(Conflict):
    code, title = "flash_not_started", "The flash sale has not started"


class FlashEnded(Conflict):
    code, title = "flash_ended", "The flash sale is over"


class FlashSoldOut(Conflict):
    code, title = "flash_sold_out", "Sold out"


class LimitReached(Conflict):
    code, title = "flash_limit_reached", "Per-customer limit reached"


class NoCheckoutSlot(Conflict):
    code, title = "no_checkout_slot", "No checkout slot"


class SlotExpired(Conflict):
    code, title = "slot_expired", "The checkout slot expired"


class CheckoutInProgress(Conflict):
    code, title = "checkout_in_progress", "A checkout is already in progress"


class NotInQueue(NotFound):
    code, title = "not_in_queue", "Not in the queue"


class QueuedElsewhere(Conflict):
    code, title = "queued_elsewhere", "Already in another store's line"


class SaleOverlap(Conflict):
    code, title = "flash_overlap", "Another sale of this product overlaps"


def closed_error(reason: str | None) -> Conflict:
    """The error of joining a closed line: sold out, or the sale is over."""
    if reason == "sold_out":
        return FlashSoldOut("every unit of this sale is sold", reason=reason)
    return FlashEnded(f"the sale is over ({reason or 'closed'})", reason=reason or "closed")
