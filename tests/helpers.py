"""Helpers the tests share."""

from __future__ import annotations

import httpx


async def login(client: httpx.AsyncClient, login_name: str, secret: str) -> dict[str, str]:
    """Authorization headers for a seeded user."""
    response = await client.post("/v1/auth/login", json={"login": login_name, "secret": secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
