"""``qc seed``: build the demo city with bulk COPY, deterministic for a given ``--seed``.

12+ dark stores at real Bengaluru neighbourhoods, ~5,000 grocery SKUs with valid EAN-13
codes, an aisle/shelf/bin layout per store with the picker's walk sequence, stock and
prices per store, riders, pickers, a city manager and sample customers.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from functools import cache
from itertools import product as cartesian
from typing import Any, TypedDict

import psycopg

from scanners.symbology import ean13_check_digit
from server.identity.service import hash_secret
from server.picking.walk import walk_sequence
from server.seed.bengaluru import (
    AISLES,
    BINS_PER_SHELF,
    CATEGORIES,
    CITY_ID,
    CITY_NAME,
    DEMO_SUBSTITUTION,
    PRODUCT_SIZES,
    SHELVES_PER_AISLE,
    STORES,
)
from shared.enums import RiderStatus, Role
from shared.geo import LatLng, destination

# Demo credentials, printed by ``qc seed``. Real deployments create staff through the API.
DEMO_SECRETS = {
    Role.ADMIN: "admin-demo",
    Role.MANAGER: "manager-demo",
    Role.PICKER: "1234",
    Role.RIDER: "4321",
    Role.CUSTOMER: "customer-demo",
}

OPEN_ALL_DAY = {d: [["06:00", "02:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

TABLES_IN_LOAD_ORDER = [
    "cities",
    "dark_stores",
    "store_bins",
    "categories",
    "products",
    "store_prices",
    "store_inventory",
    "users",
    "riders",
]


@dataclass
class SeedSummary:
    stores: int = 0
    products: int = 0
    inventory_rows: int = 0
    riders: int = 0
    pickers: int = 0
    customers: int = 0
    logins: dict[str, str] = field(default_factory=dict)  # login -> secret (demo only)


def ean13(index: int) -> str:
    body = f"890{index:09d}"  # 890: GS1 India
    return body + str(ean13_check_digit(body))


class _Product(TypedDict):
    """One catalogue row, its keys in the column order of the ``products`` COPY."""

    sku_id: str
    name: str
    category_id: str
    brand: str
    mrp_paise: int
    weight_grams: int
    pack_size: str
    barcode: str
    case_pack: int
    image_urls: list[str]


def _products(rng: random.Random, count: int) -> list[_Product]:
    """``count`` distinct SKUs spread over the categories in proportion to their variety."""
    pools: dict[str, list[tuple[str, str, str, tuple[str, int, int]]]] = {}
    for cat, (_, _, brands, nouns, variants, sizes) in CATEGORIES.items():
        # the n-th pack of the product's own sizes (PRODUCT_SIZES) or else the category's
        combos = [
            (brand, variant, noun, PRODUCT_SIZES.get(noun, sizes)[n])
            for brand, variant, noun, n in cartesian(brands, variants, nouns, range(len(sizes)))
        ]
        rng.shuffle(combos)
        pools[cat] = combos
    total = sum(len(p) for p in pools.values())
    if count > total:
        raise ValueError(f"the catalogue shape allows at most {total} SKUs")
    rows: list[_Product] = []
    quotas = {c: max(1, round(count * len(p) / total)) for c, p in pools.items()}
    # fix rounding so the quotas add up to exactly ``count``
    order = sorted(pools, key=lambda c: -len(pools[c]))
    while sum(quotas.values()) > count:
        quotas[max(order, key=lambda c: quotas[c])] -= 1
    i = 0
    while sum(quotas.values()) < count:
        c = order[i % len(order)]
        if quotas[c] < len(pools[c]):
            quotas[c] += 1
        i += 1
    for cat in CATEGORIES:
        for brand, variant, noun, (label, grams, rupees) in pools[cat][: quotas[cat]]:
            idx = len(rows) + 1
            name = " ".join(w for w in (brand, variant, noun) if w)
            mrp = round(rupees * rng.uniform(0.85, 1.3)) * 100
            rows.append(
                {
                    "sku_id": f"SKU{idx:05d}",
                    "name": f"{name} {label}",
                    "category_id": cat,
                    "brand": brand,
                    "mrp_paise": mrp,
                    "weight_grams": grams,
                    "pack_size": label,
                    "barcode": ean13(idx),
                    "case_pack": rng.choice([6, 12, 12, 24]),
                    "image_urls": [f"https://img.qc.dev/p/SKU{idx:05d}.jpg"],
                }
            )
    return rows


def _bins() -> list[tuple[str, int, int]]:
    return [
        (a, s, b)
        for a in AISLES
        for s in range(1, SHELVES_PER_AISLE + 1)
        for b in range(1, BINS_PER_SHELF + 1)
    ]


@cache
def _demo_hashes() -> dict[Role, str]:
    # scrypt is slow on purpose; the demo's few shared secrets are hashed once per process
    return {role: hash_secret(secret) for role, secret in DEMO_SECRETS.items()}


SOLD_OUT_SHARE = 0.004  # a real store opens with a few SKUs out (~20 of 5,000), not 3 %
_OLD_OUT_SHARE = 0.03  # the draw the seed made before: kept, so every later draw is as it was


def _opening_stock(rng: random.Random, capacity: int) -> int:
    """Units on the shelf when the store opens: a few SKUs sold out and waiting for the
    next delivery, the rest between a quarter and all of the shelf's capacity."""
    draw = rng.random()
    if draw < SOLD_OUT_SHARE:
        return 0
    if draw < _OLD_OUT_SHARE:  # no second draw here (there was none): the seed stays put
        return capacity // 2
    return rng.randint(capacity // 4, capacity)


def bin_code(aisle: str, shelf: int, bin_no: int) -> str:
    return f"{aisle}-{shelf:02d}-{bin_no}"


def seed_city(
    url: str,
    *,
    seed: int = 42,
    stores: int = 12,
    skus: int = 5000,
    riders: int = 120,
    pickers_per_store: int = 4,
    customers: int = 50,
    hours: dict[str, list[list[str]]] | None = OPEN_ALL_DAY,
) -> SeedSummary:
    """Load the demo city into an empty, migrated database (one transaction).

    ``hours`` are every store's operating hours; None keeps them open round the clock
    (the test suite and the benchmarks, which must not depend on the hour they run at).
    """
    if not 1 <= stores <= len(STORES):
        raise ValueError(f"stores must be between 1 and {len(STORES)}")
    rng = random.Random(seed)
    summary = SeedSummary()
    chosen = STORES[:stores]
    catalogue = _products(rng, skus)
    bins = _bins()
    walk = walk_sequence(bins)
    aisle_bins: dict[str, list[tuple[str, int, int]]] = {a: [] for a in AISLES}
    for aisle_bin in bins:
        aisle_bins[aisle_bin[0]].append(aisle_bin)
    hashes = _demo_hashes()

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        if _store_count(cur):
            raise RuntimeError("the database already holds a city; use `qc seed --reset`")
        cur.execute(
            "INSERT INTO cities (city_id, name, timezone) VALUES (%s, %s, %s)",
            (CITY_ID, CITY_NAME, "Asia/Kolkata"),
        )
        with cur.copy(
            "COPY dark_stores (store_id, store_name, city_id, lat, lng, "
            "service_radius_m, is_operational, substitution_policy, address, "
            "operating_hours) FROM STDIN"
        ) as copy:
            for store_id, hood, lat, lng in chosen:
                copy.write_row(
                    (
                        store_id,
                        f"qc {hood}",
                        CITY_ID,
                        lat,
                        lng,
                        3000,
                        True,
                        "substitute",
                        f"{hood}, {CITY_NAME}",
                        json.dumps(hours) if hours else None,
                    )
                )
        with cur.copy(
            "COPY store_bins (store_id, bin_code, aisle, shelf, bin, walk_seq) FROM STDIN"
        ) as copy:
            for store_id, *_ in chosen:
                for a, s, b in bins:
                    copy.write_row((store_id, bin_code(a, s, b), a, s, b, walk[(a, s, b)]))
        with cur.copy("COPY categories (category_id, name, sort_order) FROM STDIN") as copy:
            for i, (cat, spec) in enumerate(CATEGORIES.items()):
                copy.write_row((cat, spec[0], i))
        with cur.copy(
            "COPY products (sku_id, name, category_id, brand, mrp_paise, "
            "weight_grams, pack_size, barcode, case_pack, image_urls, is_active) "
            "FROM STDIN"
        ) as copy:
            for p in catalogue:
                copy.write_row((*p.values(), True))
        # popularity is Zipf-like: a few SKUs sell a lot, most slowly
        popularity = {
            p["sku_id"]: 1.0 / (rank + 1) ** 0.8
            for rank, p in enumerate(rng.sample(catalogue, len(catalogue)))
        }
        with cur.copy(
            "COPY store_prices (store_id, sku_id, selling_price_paise) FROM STDIN"
        ) as price_copy:
            for store_id, *_ in chosen:
                for p in catalogue:
                    discount = rng.choice([0, 0, 0, 5, 10, 15, 20])
                    price = p["mrp_paise"] * (100 - discount) // 100
                    price_copy.write_row((store_id, p["sku_id"], price))
        with cur.copy(
            "COPY store_inventory (store_id, sku_id, available_qty, reorder_level, "
            "max_capacity, bin_code) FROM STDIN"
        ) as inv_copy:
            for store_id, *_ in chosen:
                slot = {a: 0 for a in AISLES}
                for p in catalogue:
                    aisle = CATEGORIES[p["category_id"]][1]
                    spots = aisle_bins[aisle]
                    a, s, b = spots[slot[aisle] % len(spots)]
                    slot[aisle] += 1
                    capacity = 40 + int(160 * popularity[p["sku_id"]] ** 0.5)
                    stocked = _opening_stock(rng, capacity)
                    inv_copy.write_row(
                        (
                            store_id,
                            p["sku_id"],
                            stocked,
                            max(5, capacity // 5),
                            capacity,
                            bin_code(a, s, b),
                        )
                    )
                    summary.inventory_rows += 1
        users: list[tuple[object, ...]] = []
        rider_rows: list[tuple[object, ...]] = []

        def add_user(
            login: str,
            name: str,
            role: Role,
            *,
            store: str | None = None,
            city: str | None = None,
            phone: str | None = None,
        ) -> uuid.UUID:
            uid = uuid.UUID(int=rng.getrandbits(128), version=4)
            users.append((uid, login, name, role.value, phone, store, city, hashes[role], True))
            summary.logins.setdefault(f"{role.value}", f"{login} / {DEMO_SECRETS[role]}")
            return uid

        add_user("admin", "Platform Admin", Role.ADMIN)
        add_user("manager.blr", "Asha Rao (City Manager)", Role.MANAGER, city=CITY_ID)
        for store_id, hood, *_ in chosen:
            for n in range(1, pickers_per_store + 1):
                add_user(
                    f"picker.{store_id.split('-')[1].lower()}.{n}",
                    f"{hood} Picker {n}",
                    Role.PICKER,
                    store=store_id,
                    city=CITY_ID,
                )
                summary.pickers += 1
        for n in range(1, riders + 1):
            store_id, _, lat, lng = chosen[(n - 1) % len(chosen)]
            uid = add_user(
                f"rider.{n:03d}",
                f"Rider {n:03d}",
                Role.RIDER,
                city=CITY_ID,
                phone=f"+9190000{n:05d}",
            )
            spot = destination(LatLng(lat, lng), rng.uniform(0, 360), rng.uniform(50, 1500))
            rider_rows.append(
                (
                    uid,
                    CITY_ID,
                    store_id,
                    rng.choice(["scooter", "scooter", "ev-scooter", "bicycle"]),
                    round(rng.uniform(3.8, 5.0), 2),
                    rng.randint(35, 100),
                    RiderStatus.OFFLINE.value,
                    False,
                    spot.lat,
                    spot.lng,
                )
            )
        for n in range(1, customers + 1):
            add_user(
                f"customer.{n:03d}", f"Customer {n:03d}", Role.CUSTOMER, phone=f"+9180000{n:05d}"
            )
        with cur.copy(
            "COPY users (id, login, name, role, phone, store_id, city_id, "
            "secret_hash, is_active) FROM STDIN"
        ) as copy:
            for row in users:
                copy.write_row(row)
        with cur.copy(
            "COPY riders (rider_id, city_id, home_store_id, vehicle, rating, "
            "battery_pct, status, on_duty, lat, lng) FROM STDIN"
        ) as copy:
            for row in rider_rows:
                copy.write_row(row)
        conn.commit()
        for table in TABLES_IN_LOAD_ORDER:
            cur.execute(f"ANALYZE {table}")
        conn.commit()
    summary.stores = len(chosen)
    summary.products = len(catalogue)
    summary.riders = riders
    summary.customers = customers
    return summary


def seed_demo_city(url: str, **options: Any) -> SeedSummary:
    """``seed_city``, its stores settling short lines as the demo's dark stores do
    (``DEMO_SUBSTITUTION``: most substitute, some ask the customer, a few never). Only the
    demo's: ``seed_city`` alone keeps every store on "substitute" (the suite, the
    benchmarks and the simulations, whose figures count on it). The mix draws nothing: the
    rest of the city is ``seed_city``'s with the same options."""
    summary = seed_city(url, **options)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            "UPDATE dark_stores SET substitution_policy = %s, substitution_fallback = %s "
            "WHERE store_id = %s",
            [(policy, fallback, store) for store, (policy, fallback) in DEMO_SUBSTITUTION.items()],
        )
    return summary


def _store_count(cur: psycopg.Cursor[Any]) -> int:
    row = cur.execute("SELECT count(*) FROM dark_stores").fetchone()
    assert row is not None  # count(*) answers one row
    return int(row[0])


def database_is_empty(url: str) -> bool:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        return not _store_count(cur)


def reset_database(url: str) -> None:
    """Remove every row of every table but the migration marker (``qc seed --reset``)."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
