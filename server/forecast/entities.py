"""Stores, SKUs and category traits shared by the generator, the model and the backtest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

DEFAULT_CITY = "Bengaluru"


@dataclass(frozen=True, slots=True)
class Store:
    store_id: str
    city: str = DEFAULT_CITY


@dataclass(frozen=True, slots=True)
class Sku:
    """A catalogue item. Launch/discontinue dates are catalogue facts the model may use."""

    sku_id: str
    category: str
    launched_on: date | None = None  # None: on sale since before the history starts
    discontinued_on: date | None = None  # first day it is no longer sold

    def __post_init__(self) -> None:
        if not self.sku_id:
            raise ValueError("sku_id must not be empty")
        if not self.category:
            raise ValueError(f"SKU {self.sku_id}: category must not be empty")
        if (
            self.launched_on is not None
            and self.discontinued_on is not None
            and self.discontinued_on <= self.launched_on
        ):
            raise ValueError(f"SKU {self.sku_id}: discontinued_on must be after launched_on")


@dataclass(frozen=True, slots=True)
class CategoryTraits:
    """How a category's demand moves. Lifts are fractions: 0.40 means +40 %.

    ``morning``/``midday``/``evening``/``late`` weight the hour-of-day bumps (IST).
    """

    share: float  # share of a synthetic catalogue
    morning: float
    midday: float
    evening: float
    late: float
    weekend_lift: float = 0.10
    rain_lift: float = 0.0
    match_lift: float = 0.0
    holiday_lift: float = 0.15


# Slugs match the seeded catalogue (server/seed/bengaluru.py) so the integrator can pass
# category ids straight through; unknown categories fall back to GENERIC_TRAITS.
CATEGORY_TRAITS: dict[str, CategoryTraits] = {
    "fruits-vegetables": CategoryTraits(0.09, 1.6, 0.7, 1.5, 0.1, 0.10, -0.15, 0.0, 0.20),
    "dairy-bread-eggs": CategoryTraits(0.07, 3.0, 0.6, 1.2, 0.2, 0.08, 0.05, 0.0, 0.15),
    "bakery": CategoryTraits(0.05, 2.4, 0.6, 1.0, 0.3, 0.12, 0.0, 0.0, 0.20),
    "snacks-munchies": CategoryTraits(0.10, 0.3, 0.8, 2.0, 1.2, 0.20, 0.20, 0.40, 0.35),
    "cold-drinks-juices": CategoryTraits(0.07, 0.3, 1.3, 1.6, 0.9, 0.15, -0.15, 0.30, 0.30),
    "tea-coffee": CategoryTraits(0.04, 2.0, 0.8, 1.3, 0.2, 0.05, 0.35, 0.0, 0.10),
    "instant-food": CategoryTraits(0.06, 0.5, 1.0, 1.5, 1.6, 0.10, 0.30, 0.10, 0.10),
    "atta-rice-dal": CategoryTraits(0.07, 1.2, 0.8, 1.2, 0.1, 0.10, 0.0, 0.0, 0.15),
    "masala-oil": CategoryTraits(0.06, 1.0, 0.8, 1.2, 0.1, 0.08, 0.0, 0.0, 0.15),
    "sweets-chocolates": CategoryTraits(0.05, 0.3, 1.0, 1.5, 0.8, 0.15, 0.0, 0.10, 0.60),
    "biscuits": CategoryTraits(0.06, 1.2, 1.0, 1.3, 0.6, 0.10, 0.20, 0.10, 0.20),
    "breakfast-cereals": CategoryTraits(0.03, 2.0, 0.5, 0.8, 0.2, 0.15, 0.0, 0.0, 0.05),
    "dry-fruits": CategoryTraits(0.03, 0.8, 0.9, 1.1, 0.2, 0.10, 0.0, 0.0, 0.50),
    "personal-care": CategoryTraits(0.08, 0.8, 1.2, 1.2, 0.4, 0.10, 0.0, 0.0, 0.05),
    "cleaning-essentials": CategoryTraits(0.07, 1.0, 1.2, 1.0, 0.2, 0.20, -0.05, 0.0, 0.05),
    "baby-care": CategoryTraits(0.03, 1.2, 1.0, 1.1, 0.6, 0.05, 0.0, 0.0, 0.0),
    "pet-care": CategoryTraits(0.02, 1.0, 1.0, 1.0, 0.3, 0.10, 0.0, 0.0, 0.0),
    "meat-fish": CategoryTraits(0.02, 0.8, 1.4, 1.4, 0.1, 0.35, 0.10, 0.0, 0.25),
}
GENERIC_TRAITS = CategoryTraits(0.0, 1.0, 1.0, 1.2, 0.3)

# (store_id, city): the seeded Bengaluru dark stores
DEFAULT_STORES: tuple[tuple[str, str], ...] = (
    ("BLR-KOR", DEFAULT_CITY),
    ("BLR-IND", DEFAULT_CITY),
    ("BLR-HSR", DEFAULT_CITY),
    ("BLR-WHF", DEFAULT_CITY),
    ("BLR-JAY", DEFAULT_CITY),
    ("BLR-JPN", DEFAULT_CITY),
    ("BLR-BTM", DEFAULT_CITY),
    ("BLR-MAL", DEFAULT_CITY),
    ("BLR-HEB", DEFAULT_CITY),
    ("BLR-ELC", DEFAULT_CITY),
    ("BLR-MRT", DEFAULT_CITY),
    ("BLR-BEL", DEFAULT_CITY),
    ("BLR-YLK", DEFAULT_CITY),
    ("BLR-BSK", DEFAULT_CITY),
)


def traits_for(category: str) -> CategoryTraits:
    return CATEGORY_TRAITS.get(category, GENERIC_TRAITS)


def make_stores(count: int = 12, *, cities: Sequence[str] | None = None) -> list[Store]:
    """``count`` stores; the first ones are the seeded Bengaluru stores.

    With ``cities`` the stores are spread round-robin over those cities (to exercise
    per-city weather).
    """
    if count < 1:
        raise ValueError("need at least one store")
    stores: list[Store] = []
    for i in range(count):
        sid = DEFAULT_STORES[i][0] if i < len(DEFAULT_STORES) else f"BLR-S{i + 1:02d}"
        city = cities[i % len(cities)] if cities else DEFAULT_CITY
        stores.append(Store(sid, city))
    return stores


@dataclass(frozen=True, slots=True)
class CatalogueSpec:
    new_share: float = 0.04  # launched inside the history
    discontinued_share: float = 0.03  # stopped inside the history
    categories: dict[str, float] = field(
        default_factory=lambda: {c: t.share for c, t in CATEGORY_TRAITS.items()}
    )


def make_catalogue(
    count: int,
    *,
    start: date,
    days: int,
    seed: int = 0,
    spec: CatalogueSpec | None = None,
) -> list[Sku]:
    """A deterministic synthetic catalogue ``SKU00001..`` with launches and discontinuations."""
    if count < 1:
        raise ValueError("need at least one SKU")
    spec = spec or CatalogueSpec()
    rng = np.random.default_rng([seed, 11])
    names = sorted(spec.categories)
    shares = np.array([spec.categories[c] for c in names], dtype=float)
    cats = rng.choice(len(names), size=count, p=shares / shares.sum())
    roll = rng.random(count)
    launch_day = rng.integers(days // 3, max(days // 3 + 1, days - 10), size=count)
    stop_day = rng.integers(days // 3, max(days // 3 + 1, days - 5), size=count)
    skus: list[Sku] = []
    for i in range(count):
        launched = discontinued = None
        if roll[i] < spec.new_share:
            launched = start + timedelta(days=int(launch_day[i]))
        elif roll[i] < spec.new_share + spec.discontinued_share:
            discontinued = start + timedelta(days=int(stop_day[i]))
        skus.append(Sku(f"SKU{i + 1:05d}", names[int(cats[i])], launched, discontinued))
    return skus
