"""Login, tokens and role guards: 401 means who are you, 403 means not yours."""

from __future__ import annotations

import httpx

from server.kit.clock import Clock
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login


async def test_login_returns_a_token_that_identifies_the_user(
    city, client: httpx.AsyncClient
) -> None:
    headers = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    me = (await client.get("/v1/me", headers=headers)).json()
    assert me["login"] == "manager.blr" and me["role"] == "manager" and me["city_id"] == "BLR"


async def test_picker_logs_in_with_pin(city, client: httpx.AsyncClient) -> None:
    headers = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    me = (await client.get("/v1/me", headers=headers)).json()
    assert me["role"] == "picker" and me["store_id"] == "BLR-KOR"


async def test_wrong_secret_is_401(city, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/login", json={"login": "manager.blr", "secret": "nope"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await client.post("/v1/auth/login", json={"login": "nobody", "secret": "x"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


async def test_missing_token_is_401(city, client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/me")
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_invalid_token_is_401(city, client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/me", headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_token_signed_with_another_key_is_401(city, client: httpx.AsyncClient) -> None:
    import jwt

    forged = jwt.encode(
        {"sub": "00000000-0000-4000-8000-000000000000", "exp": 2**40},
        "some-other-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_expired_token_is_401_by_the_server_clock(
    city, client: httpx.AsyncClient, clock: Clock, settings
) -> None:
    headers = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    clock.advance(settings.token_ttl_s + 1)
    r = await client.get("/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "token_expired"


async def test_wrong_role_is_403(city, client: httpx.AsyncClient) -> None:
    headers = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    r = await client.get("/v1/stores/BLR-KOR/staff", headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


async def test_manager_sees_own_city_staff_only(city, client: httpx.AsyncClient) -> None:
    headers = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    r = await client.get("/v1/stores/BLR-KOR/staff", headers=headers)
    assert r.status_code == 200
    assert [u["login"] for u in r.json()] == ["picker.kor.1", "picker.kor.2"]
    r = await client.get("/v1/stores/NOPE/staff", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "store_not_found"


async def test_store_list_pages_by_cursor(city, client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/stores", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (
        await client.get("/v1/stores", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    ids = [s["store_id"] for s in first["items"] + rest["items"]]
    assert len(ids) == 3 == len(set(ids)) and rest["next_cursor"] is None


async def test_tokens_work_when_the_server_clock_runs_ahead(
    city, client: httpx.AsyncClient, clock: Clock
) -> None:
    clock.advance(86_400)  # the demo's sped-up clock is ahead of the wall clock
    headers = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
