"""Catalogue reads that need more than a lookup: search, with in-stock items first.

The catalogue itself (products, prices, categories, flash offers) is each replica's
in-process copy (``server.catalog.snapshot``); availability is read live from Redis.
"""

from __future__ import annotations

from server.catalog.snapshot import Item, StoreCatalog
from server.catalog.stock import StockReads

SEARCH_CANDIDATES = 60  # best-ranked matches whose stock decides the order (3 pages of 20)


async def search(
    stock: StockReads, store: StoreCatalog, *, query: str, limit: int
) -> tuple[list[Item], list[int]]:
    """Prefix matching ("amu" finds Amul) with trigram typo tolerance ("ammul" finds
    Amul) over the store's index; in-stock items first, then by rank. Returns the items
    and their live available units (one Redis call for the candidates)."""
    found = store.searched(query, SEARCH_CANDIDATES)
    if not found:
        return [], []
    qty = await stock.read(store.store_id, [i.stock_key for i in found])
    ranked = sorted(range(len(found)), key=lambda i: qty[i] <= 0)[:limit]  # stable: rank kept
    return [found[i] for i in ranked], [qty[i] for i in ranked]
