"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from server.kit.db import sqlalchemy_url
from server.kit.migrate import alembic_config
from server.models import metadata
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login
from tests.server.picking.test_picking_api import place_confirmed_order


def _ignorable(diff: tuple) -> bool:
    # generated columns and server defaults are compared loosely by alembic; types and
    # presence of tables, columns and indexes are what must agree
    return diff[0] in {"modify_default", "modify_comment"}


def test_migrated_schema_matches_the_models(services) -> None:
    engine = create_engine(sqlalchemy_url(services.database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = [d for d in compare_metadata(context, metadata) if not _ignorable(d)]
    finally:
        engine.dispose()
    assert diffs == []


async def test_0009_recovers_the_ordered_quantity_of_earlier_shorts(city, client) -> None:
    """Rows shorted before 0009 had only the found quantity left: the ledger gives back
    what was ordered (two shorts on one line here)."""
    order = await place_confirmed_order(client, city.database_url, lines=2)
    oid = order["order_id"]
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    sku = next(ln["sku_id"] for ln in task["lines"] if ln["quantity"] == 2)
    for found in (1, 0):
        r = await client.post(
            f"/v1/picking/tasks/{oid}/short",
            headers=picker,
            json={"sku_id": sku, "found_qty": found, "reason": "damaged"},
        )
        assert r.status_code == 200, r.text
    config = alembic_config(city.database_url)
    command.downgrade(config, "0008")
    command.upgrade(config, "head")
    with psycopg.connect(city.database_url) as conn:
        rows = conn.execute(
            "SELECT sku_id, quantity, ordered_qty FROM order_items WHERE order_id = %s", (oid,)
        ).fetchall()
    assert {r[0]: r[1:] for r in rows} == {
        ln["sku_id"]: (0, 2) if ln["sku_id"] == sku else (ln["quantity"],) * 2
        for ln in task["lines"]
    }
