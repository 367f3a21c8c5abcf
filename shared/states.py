"""The order state machine: one transition table for the server and the apps.

PLACED -> CONFIRMED -> PICKING -> PACKED -> DISPATCHED -> OUT_FOR_DELIVERY -> DELIVERED,
with CANCELLED (customer/system/payment failure) and PARTIALLY_FULFILLED (short-picked,
continues to PACKED).
"""

from __future__ import annotations

from shared.enums import OrderStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.PLACED: frozenset({S.CONFIRMED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.PICKING, S.CANCELLED}),
    S.PICKING: frozenset({S.PACKED, S.PARTIALLY_FULFILLED, S.CANCELLED}),
    S.PARTIALLY_FULFILLED: frozenset({S.PACKED, S.CANCELLED}),
    S.PACKED: frozenset({S.DISPATCHED, S.CANCELLED}),
    S.DISPATCHED: frozenset({S.OUT_FOR_DELIVERY}),
    # a failed delivery (nobody home, refused) ends the order; the bag returns to the store
    S.OUT_FOR_DELIVERY: frozenset({S.DELIVERED, S.CANCELLED}),
    S.DELIVERED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[S] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# The column on ``orders`` that records when the order entered each state.
TIMESTAMP_COLUMN: dict[S, str] = {s: f"{s.value.lower()}_at" for s in S}

# A customer may cancel until picking starts.
CUSTOMER_CANCELLABLE: frozenset[S] = frozenset({S.PLACED, S.CONFIRMED})


def can_transition(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


class InvalidTransition(ValueError):
    def __init__(self, current: S, target: S) -> None:
        super().__init__(f"an order in {current} cannot move to {target}")
        self.current = current
        self.target = target


def check_transition(current: S, target: S) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current, target)
