"""The staff scope rule: a manager works in their own city, a picker in their own store.

The matrix is generated from the app's OpenAPI: every staff route with a ``{store_id}``
is called as the store's own manager, a manager of another city, and pickers of other
stores, so a new staff route cannot skip the rule unnoticed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from server.identity.service import hash_secret
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login
from tests.server.picking.test_picking_api import place_confirmed_order

STORE = "BLR-KOR"
MUM_SECRET = "mumbai-secret-1"


@pytest.fixture
def second_city(city) -> None:
    """Mumbai next to the seeded Bengaluru: one store, its manager and a picker."""
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "INSERT INTO cities (city_id, name, timezone) VALUES ('MUM', 'Mumbai', 'Asia/Kolkata')"
        )
        conn.execute(
            "INSERT INTO dark_stores (store_id, store_name, city_id, lat, lng, service_radius_m, "
            "is_operational, substitution_policy, address) VALUES ('MUM-AND', 'qc Andheri', "
            "'MUM', 19.1197, 72.8468, 3000, true, 'substitute', 'Andheri, Mumbai')"
        )
        secret_hash = hash_secret(MUM_SECRET)
        for login_name, role, store in (
            ("manager.mum", "manager", None),
            ("picker.and.1", "picker", "MUM-AND"),
        ):
            conn.execute(
                "INSERT INTO users (id, login, name, role, city_id, store_id, secret_hash, "
                "is_active) VALUES (%s, %s, %s, %s, 'MUM', %s, %s, true)",
                (uuid.uuid4(), login_name, login_name, role, store, secret_hash),
            )


def _example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A minimal valid value for an OpenAPI schema: required fields, examples or minimums."""
    if "$ref" in schema:
        return _example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "examples" in schema:
        return schema["examples"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(props[k], components) for k in schema.get("required", [])}
    if kind in ("integer", "number"):
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if "enum" in schema:
        return schema["enum"][0]
    return "scope check"


def _staff_store_routes(openapi: dict[str, Any]) -> list[tuple[str, str, Any]]:
    components = openapi["components"]["schemas"]
    routes = []
    for path, operations in openapi["paths"].items():
        if not path.startswith("/v1/") or "{store_id}" not in path:
            continue
        for method, op in operations.items():
            if "staff" not in op.get("tags", []):
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            routes.append(
                (method.upper(), path, _example(body["schema"], components) if body else None)
            )
    return routes


async def test_every_staff_store_route_applies_the_scope_rule(
    city, second_city, client: httpx.AsyncClient
) -> None:
    openapi = (await client.get("/openapi.json")).json()
    routes = _staff_store_routes(openapi)
    assert len(routes) >= 9, routes  # staff, inventory, picking queue, ops store actions
    with psycopg.connect(city.database_url) as conn:
        row = conn.execute(
            "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id LIMIT 1",
            (STORE,),
        ).fetchone()
    assert row is not None
    sku = row[0]
    own = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    refused = {
        "manager.mum": (await login(client, "manager.mum", MUM_SECRET), {"not_your_city"}),
        "picker.and.1": (
            await login(client, "picker.and.1", MUM_SECRET),
            {"not_your_store", "forbidden"},
        ),
        "picker.ind.1": (
            await login(client, "picker.ind.1", DEMO_SECRETS[Role.PICKER]),
            {"not_your_store", "forbidden"},
        ),
    }
    for method, template, body in routes:
        url = template.format(store_id=STORE, sku_id=sku)
        for who, (headers, codes) in refused.items():
            r = await client.request(method, url, json=body, headers=headers)
            assert r.status_code == 403 and r.json()["code"] in codes, (method, url, who, r.text)
        # the store's own manager gets past the rule (a 409 on a stale count is past it)
        r = await client.request(method, url, json=body, headers=own)
        assert r.status_code < 500 and r.status_code not in (401, 403, 404), (method, url, r.text)


async def test_a_manager_of_another_city_cannot_work_this_citys_pick_tasks(
    city, second_city, client: httpx.AsyncClient
) -> None:
    order = await place_confirmed_order(client, city.database_url, lines=1)
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    line = task["lines"][0]
    task_url = f"/v1/picking/tasks/{order['order_id']}"
    calls = [
        ("GET", task_url, None),
        ("POST", f"{task_url}/scans", {"scan_id": uuid.uuid4().hex, "code": line["barcode"]}),
        ("POST", f"{task_url}/short", {"sku_id": line["sku_id"], "found_qty": 0}),
        (
            "POST",
            f"{task_url}/substitute",
            {"sku_id": line["sku_id"], "substitute_sku": "X", "quantity": 1},
        ),
        ("POST", f"{task_url}/pack", {"bag_count": 1}),
        ("GET", f"/v1/picking/stores/{STORE}/queue", None),
    ]
    mum = await login(client, "manager.mum", MUM_SECRET)
    other_picker = await login(client, "picker.ind.1", DEMO_SECRETS[Role.PICKER])
    for headers, code in ((mum, "not_your_city"), (other_picker, "not_your_store")):
        for method, url, body in calls:
            r = await client.request(method, url, json=body, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == code, (method, url, r.text)
    after = (await client.get(task_url, headers=picker)).json()
    assert [(x["sku_id"], x["picked_qty"], x["status"]) for x in after["lines"]] == [
        (line["sku_id"], line["picked_qty"], line["status"])
    ]
