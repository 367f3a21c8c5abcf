"""What customers want and when: the daily order curve, believable baskets, popular SKUs.

Pure functions of a ``random.Random`` and the local time of day, so a seed replays the
same wishes.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from shared.schemas.catalog import ProductCard

# Relative order rate by local hour (1.0 = the configured base rate): quiet nights, a
# breakfast peak, lunch, and the evening peak when people get home.
_HOURLY = [
    0.35, 0.2, 0.1, 0.05, 0.05, 0.1,  # 00-05
    0.4, 1.2, 1.6, 1.4, 0.9, 0.9,  # 06-11
    1.1, 1.0, 0.7, 0.7, 0.9, 1.3,  # 12-17
    1.8, 2.0, 1.9, 1.4, 0.9, 0.6,  # 18-23
]  # fmt: skip


def hourly_profile(hour: float) -> float:
    """The order-rate multiplier at a local time of day (hours, 0-24), interpolated."""
    h = hour % 24.0
    lo = int(h)
    frac = h - lo
    return _HOURLY[lo] * (1 - frac) + _HOURLY[(lo + 1) % 24] * frac


@dataclass(frozen=True)
class Want:
    """One line of a basket: a category, optionally a word the product name must hold."""

    category: str
    keyword: str | None = None
    max_qty: int = 1


@dataclass(frozen=True)
class Basket:
    name: str
    wants: tuple[Want, ...]
    # weight by part of the day: morning (6-11), day (11-17), evening (17-22), night
    weights: tuple[float, float, float, float]


BASKETS: tuple[Basket, ...] = (
    Basket(
        "breakfast",
        (
            Want("dairy-bread-eggs", "Milk", 2),
            Want("bakery", "Bread"),
            Want("dairy-bread-eggs", "Eggs"),
        ),
        (3.0, 0.8, 0.6, 0.3),
    ),
    Basket(
        "tea-time",
        (Want("tea-coffee"), Want("biscuits", None, 2), Want("dairy-bread-eggs", "Milk")),
        (1.5, 1.5, 0.8, 0.3),
    ),
    Basket(
        "dinner-cooking",
        (
            Want("fruits-vegetables", "Onion", 2),
            Want("fruits-vegetables", "Tomato", 2),
            Want("fruits-vegetables", None, 2),
            Want("masala-oil"),
            Want("atta-rice-dal"),
        ),
        (0.7, 1.2, 2.0, 0.2),
    ),
    Basket(
        "movie-night",
        (
            Want("snacks-munchies", None, 3),
            Want("cold-drinks-juices", None, 3),
            Want("sweets-chocolates", None, 2),
        ),
        (0.2, 0.7, 2.0, 2.5),
    ),
    Basket(
        "quick-meal",
        (Want("instant-food", "Noodles", 3), Want("cold-drinks-juices")),
        (0.4, 1.3, 1.0, 2.0),
    ),
    Basket(
        "household",
        (Want("cleaning-essentials", None, 2), Want("personal-care", None, 2)),
        (0.8, 1.3, 0.7, 0.2),
    ),
    Basket(
        "baby",
        (Want("baby-care", None, 2), Want("dairy-bread-eggs", "Milk")),
        (1.0, 0.8, 0.6, 0.5),
    ),
    Basket("pet", (Want("pet-care", None, 2),), (0.5, 0.5, 0.5, 0.2)),
    Basket(
        "non-veg",
        (Want("meat-fish", None, 2), Want("masala-oil"), Want("fruits-vegetables", "Onion")),
        (0.4, 1.0, 1.3, 0.2),
    ),
    Basket(
        "sweet-tooth",
        (Want("sweets-chocolates", None, 2), Want("dry-fruits")),
        (0.3, 0.8, 1.0, 1.2),
    ),
    Basket(
        "cereal",
        (Want("breakfast-cereals"), Want("dairy-bread-eggs", "Milk")),
        (1.5, 0.5, 0.3, 0.2),
    ),
    Basket(
        "fruit",
        (Want("fruits-vegetables", "Banana"), Want("fruits-vegetables", "Apple")),
        (1.0, 1.0, 0.6, 0.2),
    ),
)

IMPULSE = (Want("sweets-chocolates"), Want("snacks-munchies"), Want("cold-drinks-juices"))


def _part_of_day(hour: float) -> int:
    h = hour % 24.0
    if 6 <= h < 11:
        return 0
    if 11 <= h < 17:
        return 1
    if 17 <= h < 22:
        return 2
    return 3


def choose_basket(rng: random.Random, hour: float) -> tuple[str, list[Want]]:
    """A basket for this time of day, sometimes trimmed, sometimes with an impulse buy."""
    part = _part_of_day(hour)
    basket = rng.choices(BASKETS, weights=[b.weights[part] for b in BASKETS])[0]
    wants = [w for w in basket.wants if rng.random() < 0.85] or [basket.wants[0]]
    if rng.random() < 0.3:
        wants.append(rng.choice(IMPULSE))
    return basket.name, wants


def popularity(seed: int, sku_id: str) -> float:
    """A stable score in (0, 1]: a few SKUs are everyone's favourites (Zipf-like tail)."""
    digest = hashlib.blake2b(f"{seed}:{sku_id}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / 2**64  # uniform in (0, 1]
    return u**3  # most SKUs sell slowly, a few sell a lot


def pick_product(
    rng: random.Random,
    cards: list[ProductCard],
    want: Want,
    *,
    seed: int,
    exclude: set[str],
) -> ProductCard | None:
    """An in-stock product for the want, weighted by popularity (matching name first)."""
    stocked = [c for c in cards if c.in_stock and c.sku_id not in exclude]
    if want.keyword:
        matching = [c for c in stocked if want.keyword.lower() in c.name.lower()]
        stocked = matching or stocked
    if not stocked:
        return None
    return rng.choices(stocked, weights=[popularity(seed, c.sku_id) + 0.01 for c in stocked])[0]


def quantity(rng: random.Random, want: Want, available: int) -> int:
    """Mostly one; staples sometimes two or three."""
    wanted = (
        1
        if want.max_qty <= 1
        else rng.choices(range(1, want.max_qty + 1), [6, 3, 1][: want.max_qty])[0]
    )
    return max(1, min(wanted, available))
