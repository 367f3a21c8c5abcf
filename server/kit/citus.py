"""How qc's tables lie on a Citus cluster: the one place that says it.

Per-store tables are distributed by ``store_id`` and colocated, so an order, its items,
holds, events, payment, pick task, trip and outbox row live on one shard and every order
transaction is single-shard. Riders' live tables go by ``rider_id``, idempotency claims by
the customer (``user_id``), the order directory by ``order_id``. Small, read-everywhere
tables (cities, stores, the catalogue, users, city-level flash sales, forecast drivers,
the control tower's alerts and audit log) are reference tables, copied to every node.

``tests/server/test_schema_citus.py`` reads the live schema and fails when a table is not
classified here, when a distributed table's primary key, unique index or foreign key
lacks its distribution column, or when a reference table references a distributed one.
``lay_out`` runs ``ddl()`` when the ``citus`` extension is installed: in migration 0012
and after every ``upgrade_to_head`` (so tables later migrations add are laid out too).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Distributed:
    column: str
    colocate_with: str  # the group's first table: create_distributed_table's colocate_with


STORE = "store_id"

REFERENCE: tuple[str, ...] = (
    "cities",
    "dark_stores",
    "categories",
    "products",
    "users",
    "flash_sales",
    "weather_days",
    "calendar_events",
    "flash_sale_schedule",
    "ops_alerts",
    "ops_audit_log",
)

# the store group: dark_stores' children, in the order their shards are created
STORE_TABLES: tuple[str, ...] = (
    "store_inventory",
    "store_prices",
    "store_bins",
    "inventory_reservations",
    "stock_ledger",
    "carts",
    "orders",
    "order_items",
    "order_events",
    "outbox",
    "payments",
    "refunds",
    "pick_tasks",
    "pick_scans",
    "substitution_offers",
    "trips",
    "trip_stops",
    "flash_sale_stores",
    "inventory_tokens",
    "sales_history",
    "sales_stockout_hours",
    "demand_forecasts",
    "replenishment_orders",
    "inventory_journal_offsets",
    "loop_leases",  # fencing tokens, by store ('' for a loop once per cluster)
)

DISTRIBUTED: dict[str, Distributed] = {
    **{t: Distributed(STORE, STORE_TABLES[0]) for t in STORE_TABLES},
    "riders": Distributed("rider_id", "riders"),
    "rider_locations": Distributed("rider_id", "riders"),
    "rider_shifts": Distributed("rider_id", "riders"),
    "rider_location_offsets": Distributed("city_id", "rider_location_offsets"),
    "idempotency_keys": Distributed("user_id", "idempotency_keys"),
    "order_directory": Distributed("order_id", "order_directory"),
}

# Alembic's own bookkeeping stays a plain table on the coordinator
LOCAL: tuple[str, ...] = ("alembic_version",)


def ddl(existing: set[str] | None = None) -> list[str]:
    """The Citus statements: reference tables first (distributed tables' foreign keys
    point at them), then each colocation group led by its first table. ``existing``:
    the tables present (others are skipped, e.g. a table a later migration adds)."""

    def present(table: str) -> bool:
        return existing is None or table in existing

    statements = [f"SELECT create_reference_table('{t}')" for t in REFERENCE if present(t)]
    for table, spec in DISTRIBUTED.items():
        if not present(table):
            continue
        if spec.colocate_with == table:
            colocate = "none"
        else:
            colocate = spec.colocate_with
        statements.append(
            f"SELECT create_distributed_table('{table}', '{spec.column}', "
            f"colocate_with => '{colocate}')"
        )
    return statements


def lay_out(conn: Connection) -> list[str]:
    """Distribute what is not laid out yet, only where the citus extension is installed
    (on plain PostgreSQL: nothing). Safe to run again. Returns the statements run."""
    if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first() is None:
        return []
    laid_out = {
        r[0]
        for r in conn.execute(text("SELECT logicalrelid::regclass::text FROM pg_dist_partition"))
    }
    tables = {
        r[0]
        for r in conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        )
    }
    statements = ddl(tables - laid_out)
    for statement in statements:
        conn.execute(text(statement))
    return statements
