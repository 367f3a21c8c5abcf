"""Malformed tokens are 401s and every answer carries the security headers (`qc serve`
not advertising its server software: tests/qc/test_serve_servers.py)."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import TEST_SECRET
from tests.helpers import login

SUB = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": SUB, "exp": "9999999999"},
        {"sub": SUB, "exp": None},
        {"sub": SUB, "exp": [1]},
        {"sub": 12345, "exp": 2**40},
        {"sub": {"id": 1}, "exp": 2**40},
    ],
)
async def test_a_signed_token_with_malformed_claims_is_401(
    city, client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid_token"


async def test_every_answer_carries_the_security_headers(city, client: httpx.AsyncClient) -> None:
    headers = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    answers = [
        await client.get("/healthz"),
        await client.get("/v1/stores"),
        await client.get("/v1/nowhere"),
        await client.get("/v1/me"),
        await client.get("/v1/me", headers=headers),
        await client.post("/v1/auth/login", json={"login": "manager.blr", "secret": "x"}),
    ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY", r.url
    me, login_answer = answers[4], answers[5]
    assert me.headers["cache-control"] == "no-store"
    assert login_answer.headers["cache-control"] == "no-store"
    # a route's own caching stays (the public store list is not token-bound)
    assert "no-store" not in answers[1].headers.get("cache-control", "")
