"""A small in-process TTL cache for hot, slowly changing data (products, prices, stores).

Per replica by design: it only spares PostgreSQL repeated reads, so replicas may disagree
for up to ``ttl_s``. Inventory is never cached here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, ttl_s: float, max_items: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        # what "now" is read from; the deterministic simulation points it at its clock
        self.timer: Callable[[], float] = time.monotonic

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        now = self.timer()
        hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            self._items.move_to_end(key)
            return hit[1]
        value = await load()
        self._items[key] = (now + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()
