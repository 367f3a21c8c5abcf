"""Drift is judged by its offset: a change between the Redis and PostgreSQL writes moves
the offset between two looks; a real drift keeps it."""

from __future__ import annotations

from server.inventory.engine import Buckets
from server.inventory.reconcile import Drift


def stock(pg: tuple[int, int, int, int], rd: tuple[int, int, int, int]) -> Drift:
    return Drift("stock", "SKU1", Buckets(*pg), Buckets(*rd))


def test_the_same_offset_on_a_busy_sku_is_the_same_drift() -> None:
    first = stock((10, 2, 0, 0), (15, 2, 0, 0))
    later = stock((8, 4, 0, 0), (13, 4, 0, 0))  # sold two meanwhile; still 5 too many
    assert first.signature() == later.signature()


def test_a_write_in_flight_at_each_look_is_not_drift() -> None:
    first = stock((10, 0, 0, 0), (9, 1, 0, 0))  # a reservation not yet in PostgreSQL
    later = stock((9, 1, 0, 0), (7, 3, 0, 0))  # that one landed; two more in flight
    assert first.signature() != later.signature()


def test_holds_compare_by_offset_per_sku() -> None:
    a = Drift("hold", "cart-1", {"S1": 2}, {"S1": 3})
    b = Drift("hold", "cart-1", {"S1": 1}, {"S1": 2})
    c = Drift("hold", "cart-1", {"S1": 2}, {})
    assert a.signature() == b.signature() != c.signature()
    missing = Drift("stock", "SKU9", Buckets(1, 0, 0, 0), None)
    assert missing.signature() == Drift("stock", "SKU9", Buckets(1, 0, 0, 0), None).signature()
