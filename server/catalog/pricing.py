"""Money on the server, in paise: line prices, fees and totals."""

from __future__ import annotations

from dataclasses import dataclass

FREE_DELIVERY_FROM_PAISE = 199_00
DELIVERY_FEE_PAISE = 25_00
HANDLING_FEE_PAISE = 5_00


@dataclass(frozen=True)
class Totals:
    subtotal_paise: int
    delivery_fee_paise: int
    handling_fee_paise: int
    discount_paise: int
    total_paise: int


def cart_totals(lines: list[tuple[int, int, int]]) -> Totals:
    """``lines``: (unit price, MRP, quantity). Discount is what the customer saves on MRP."""
    subtotal = sum(price * qty for price, _, qty in lines)
    mrp_total = sum(mrp * qty for _, mrp, qty in lines)
    if not lines:
        return Totals(0, 0, 0, 0, 0)
    delivery = 0 if subtotal >= FREE_DELIVERY_FROM_PAISE else DELIVERY_FEE_PAISE
    return Totals(
        subtotal,
        delivery,
        HANDLING_FEE_PAISE,
        max(mrp_total - subtotal, 0),
        subtotal + delivery + HANDLING_FEE_PAISE,
    )


def flash_totals(flash_price_paise: int, mrp_paise: int, quantity: int = 1) -> Totals:
    """A flash-sale order: the sale's price per unit (bought through the sale's queue, never
    from a regular cart); fees as for any order, so a ₹1 deal still pays delivery."""
    return cart_totals([(flash_price_paise, mrp_paise, quantity)])
