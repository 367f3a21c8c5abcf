"""Helpers the tests share."""

from __future__ import annotations

import uuid

import httpx

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role


async def login(client: httpx.AsyncClient, login_name: str, secret: str) -> dict[str, str]:
    """Authorization headers for a seeded user."""
    response = await client.post("/v1/auth/login", json={"login": login_name, "secret": secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def pick_and_pack(client: httpx.AsyncClient, order_id: str) -> str:
    """BLR-KOR's first picker claims the next task (it must be this order) and packs it."""
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    assert task["order_id"] == order_id, task
    for line in task["lines"]:
        for _ in range(line["quantity"]):
            await client.post(
                f"/v1/picking/tasks/{order_id}/scans",
                headers=picker,
                json={"scan_id": uuid.uuid4().hex, "code": line["barcode"]},
            )
    packed = await client.post(
        f"/v1/picking/tasks/{order_id}/pack", json={"bag_count": 1}, headers=picker
    )
    assert packed.status_code == 200, packed.text
    return packed.json()["bag_label"]
