"""The line's quick routes (``server.kit.quick``): a join and a where-am-I answered
without FastAPI's dependency machinery give FastAPI's bytes, headers and refusals; what
the quick path does not read goes to FastAPI; and a turn's first requests of many
customers read their auth state from PostgreSQL in one query."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import psycopg
from fastapi import FastAPI
from starlette.requests import Request

from server.flash.routes import _quick_entry, _quick_join
from server.kit import keys
from server.kit.deps import get_clock
from server.kit.resources import resources_of
from tests.helpers import driver_statements
from tests.server.flash.flash_helpers import (
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)


async def _sale(app: FastAPI, client: httpx.AsyncClient, clock, database_url: str) -> str:
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    sku = flash_sku(database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(client, manager_headers(clock, database_url), clock, sku=sku, units=3)
    return str(sale["sale_id"])


def _request(app: FastAPI, method: str, path: str, headers: dict[str, str], body: bytes = b""):
    """A request as the router hands it to the route (path parameters matched)."""
    scope = {
        "type": "http",
        "app": app,
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.1.2.3", 1),
        "path_params": {"sale_id": path.split("/")[3]},
    }

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def test_quick_answers_are_fastapis_bytes_and_refusals(city, app, client, clock):
    sid = await _sale(app, client, clock, city.database_url)
    url = f"/v1/flash-sales/{sid}/queue"
    (_, first), (_, second) = make_customers(city.database_url, clock, 2)
    assert (await client.post(url, json={"store_id": STORE}, headers=first)).json()[
        "status"
    ] == "ADMITTED"
    manager = manager_headers(clock, city.database_url)

    async def asks() -> list[httpx.Response]:
        return [
            await client.post(url, json={"store_id": STORE}, headers=second),  # a repeat
            await client.get(f"{url}/me", headers=second),
            await client.post(url, json={"store_id": STORE}, headers=manager),  # 403
            await client.post(url, json={"store_id": "not a store"}, headers=second),  # 422
            await client.post(url, json={"store_id": STORE}),  # 401
            await client.get(f"/v1/flash-sales/{sid[:-1]}x/queue/me", headers=second),  # 422
        ]

    await client.post(url, json={"store_id": STORE}, headers=second)  # in line
    quick = await asks()
    app.dependency_overrides[get_clock] = get_clock  # any override: FastAPI's handlers
    try:
        generic = await asks()
    finally:
        app.dependency_overrides.clear()
    assert [r.status_code for r in quick] == [200, 200, 403, 422, 401, 422]
    for mine, theirs in zip(quick, generic, strict=True):
        assert mine.status_code == theirs.status_code
        assert mine.content == theirs.content
        for header in ("content-type", "cache-control", "content-length"):
            assert mine.headers.get(header) == theirs.headers.get(header)
    assert quick[0].json()["position"] == 1 and quick[1].json()["status"] == "WAITING"


async def test_the_solvers_read_the_common_request_and_leave_the_rest(city, app, client, clock):
    sid = await _sale(app, client, clock, city.database_url)
    url = f"/v1/flash-sales/{sid}/queue"
    ((uid, headers),) = make_customers(city.database_url, clock, 1)
    json_headers = {**headers, "content-type": "application/json"}
    body = b'{"store_id": "BLR-KOR"}'

    solved = await _quick_join(_request(app, "POST", url, json_headers, body))
    assert solved is not None and solved["user"].id == uid
    assert str(solved["sale_id"]) == sid and solved["body"].store_id == STORE
    polled = await _quick_entry(_request(app, "GET", f"{url}/me", headers))
    assert polled is not None and polled["user"].id == uid
    for method, path, asked, sent in (
        ("POST", url, json_headers, b'{"store_id": 7}'),  # FastAPI's 422
        (
            "POST",
            url,
            {"content-type": "application/json", "authorization": "Basic x"},
            body,
        ),  # FastAPI's 401
        ("POST", url, headers, body),  # no content type: FastAPI decides
        ("POST", url.replace(sid, sid.replace("-", "")), json_headers, body),  # unhyphenated
    ):
        assert await _quick_join(_request(app, method, path, asked, sent)) is None


async def test_the_address_limit_comes_first_even_before_a_bad_token(city, app, client, clock):
    sid = await _sale(app, client, clock, city.database_url)
    resources_of(app).settings.checkout_rate_limit_per_ip = "2/minute"
    url = f"/v1/flash-sales/{sid}/queue"
    (_, one), (_, two), (_, three) = make_customers(city.database_url, clock, 3)
    ok = [await client.post(url, json={"store_id": STORE}, headers=h) for h in (one, two)]
    assert [r.status_code for r in ok] == [200, 200]
    limited = await client.post(url, json={"store_id": STORE}, headers=three)
    forged = {"Authorization": "Bearer not-a-token"}
    refused = await client.post(url, json={"store_id": STORE}, headers=forged)
    for r in (limited, refused):
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert "flash ip" in r.json()["detail"] and int(r.headers["retry-after"]) >= 1
    polled = await client.get(f"{url}/me", headers=one)  # no address limit on a poll
    assert polled.status_code == 200


async def test_a_turns_first_requests_read_postgres_once_and_a_revoked_one_is_refused(
    city, app, client, clock
):
    sid = await _sale(app, client, clock, city.database_url)
    url = f"/v1/flash-sales/{sid}/queue"
    customers = make_customers(city.database_url, clock, 12)
    revoked_id = customers[5][0]
    with psycopg.connect(city.database_url) as conn:  # logged out after the token
        conn.execute(
            "UPDATE users SET tokens_valid_after = %s WHERE id = %s",
            (clock.now() + timedelta(seconds=1), revoked_id),
        )
    with driver_statements() as sent:  # at the driver: past SQLAlchemy too
        answers = await asyncio.gather(
            *(client.post(url, json={"store_id": STORE}, headers=h) for _, h in customers)
        )
    statements = [s for s in sent if "FROM users" in s]
    assert len(statements) == 1  # one query for the twelve misses
    by_user = dict(zip((uid for uid, _ in customers), answers, strict=True))
    assert by_user[revoked_id].status_code == 401
    assert by_user[revoked_id].json()["code"] == "token_revoked"
    joined = {u: r for u, r in by_user.items() if u != revoked_id}
    assert {r.status_code for r in joined.values()} == {200}
    assert len({r.json()["ticket"] for r in joined.values()}) == 11
    redis = resources_of(app).redis
    for uid, headers in customers:  # cached for the next request, the revoked one too
        assert await redis.get(keys.auth_user(str(uid))) is not None
        if uid != revoked_id:  # each request had its own user: the entry is theirs
            me = await client.get(f"{url}/me", headers=headers)
            assert me.json()["ticket"] == joined[uid].json()["ticket"]
