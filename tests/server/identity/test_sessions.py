"""Sessions end when they should: a logout revokes every token of the user and closes
their sockets, a disabled rider's socket closes and they go off duty, a socket closes when
its token expires, and one user cannot hold more than their share of sockets (over real
sockets, on a real server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from server.identity.models import User
from server.identity.service import issue_token
from server.kit.config import Settings
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import TEST_SECRET, LiveServer, Services, settings_for
from tests.helpers import login, wait_until

MANAGER = ("manager.blr", DEMO_SECRETS[Role.MANAGER])
RIDER = ("rider.001", DEMO_SECRETS[Role.RIDER])
CAP = 3


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(services, ws_max_per_user=CAP, ws_recheck_s=0.2)


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server.client() as client:
        yield client


def _ws(live_server: LiveServer, path: str, token: str) -> str:
    sep = "&" if "?" in path else "?"
    return live_server.url.replace("http", "ws", 1) + f"{path}{sep}token={token}"


async def _closed_with(ws: ClientConnection) -> int:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_logout_revokes_every_token_and_closes_the_sockets(
    city: Services, live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    first = await login(http, *MANAGER)
    second = await login(http, *MANAGER)
    token = first["Authorization"][7:]
    async with websockets.connect(_ws(live_server, "/ws/ops?city=BLR", token)) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        assert (await http.post("/v1/auth/logout", headers=second)).status_code == 204
        assert await _closed_with(ws) == 4401
    for headers in (first, second):
        r = await http.get("/v1/me", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "token_revoked"
    # a new socket on the old token is refused too: its accept reads the cached auth state,
    # which the first socket's accept had filled before the logout
    async with websockets.connect(_ws(live_server, "/ws/ops?city=BLR", token)) as ws:
        assert json.loads(await ws.recv())["error"]["code"] == "token_revoked"
        assert await _closed_with(ws) == 4401
    fresh = await login(http, *MANAGER)  # a login after the logout works
    assert (await http.get("/v1/me", headers=fresh)).status_code == 200


async def test_a_disabled_rider_is_cut_off_and_taken_off_duty(
    city: Services, live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    rider = await login(http, *RIDER)
    assert (
        await http.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    ).status_code == 200
    me = (await http.get("/v1/me", headers=rider)).json()
    manager = await login(http, *MANAGER)
    async with websockets.connect(_ws(live_server, "/ws/rider", rider["Authorization"][7:])) as ws:
        r = await http.post(f"/v1/users/{me['id']}/disable", headers=manager)
        assert r.status_code == 200 and r.json()["is_active"] is False, r.text
        assert await _closed_with(ws) == 4401
    assert (await http.get("/v1/me", headers=rider)).status_code == 401
    again = await http.post("/v1/auth/login", json={"login": RIDER[0], "secret": RIDER[1]})
    assert again.status_code == 401
    with psycopg.connect(city.database_url) as conn:
        row = conn.execute(
            "SELECT on_duty, status FROM riders WHERE rider_id = %s", (me["id"],)
        ).fetchone()
    assert row == (False, "OFFLINE")


async def test_managers_disable_their_own_staff_only(
    city: Services, http: httpx.AsyncClient
) -> None:
    manager = await login(http, *MANAGER)
    admin = (
        await http.get("/v1/me", headers=await login(http, "admin", DEMO_SECRETS[Role.ADMIN]))
    ).json()
    r = await http.post(f"/v1/users/{admin['id']}/disable", headers=manager)
    assert r.status_code == 403 and r.json()["code"] == "not_your_staff"
    customer = await login(http, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    me = (await http.get("/v1/me", headers=customer)).json()
    assert (await http.post(f"/v1/users/{me['id']}/disable", headers=customer)).status_code == 403


async def test_a_socket_closes_when_its_token_expires(
    city: Services, live_server: LiveServer
) -> None:
    with psycopg.connect(city.database_url) as conn:
        row = conn.execute("SELECT id FROM users WHERE login = %s", (MANAGER[0],)).fetchone()
    assert row is not None
    manager = User(id=row[0], login=MANAGER[0], name="m", role=Role.MANAGER, secret_hash="-")
    token, expires = issue_token(manager, key=TEST_SECRET, now=live_server.clock.now(), ttl_s=600)
    async with websockets.connect(_ws(live_server, "/ws/ops?city=BLR", token)) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "snapshot", first
        live_server.clock.advance(601)  # the server's clock passes the token's expiry
        assert await _closed_with(ws) == 4401
    assert live_server.clock.now() >= expires


async def test_one_user_cannot_hold_more_than_their_share_of_sockets(
    city: Services, live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    """The cap refuses the user's extra sockets with 4429; another user's socket is
    untouched, and every socket shares the process's one subscriber."""
    token = (await login(http, *MANAGER))["Authorization"][7:]
    url = _ws(live_server, "/ws/ops?city=BLR", token)
    held = [await websockets.connect(url) for _ in range(CAP)]
    try:
        for ws in held:
            assert json.loads(await ws.recv())["type"] == "snapshot"
        async with websockets.connect(url) as extra:
            error = json.loads(await extra.recv())
            assert error["type"] == "error" and error["error"]["code"] == "too_many_sockets"
            assert await _closed_with(extra) == 4429
        rider = (await login(http, *RIDER))["Authorization"][7:]
        async with websockets.connect(_ws(live_server, "/ws/rider", rider)) as other:
            await other.send(json.dumps({"lat": 12.93, "lng": 77.62, "at": "bad"}))
            assert json.loads(await other.recv())["type"] in ("ack", "error")
        fanout = resources_of(live_server.app).fanout
        # the process's one listener for every user's ended sessions, not a subscription per
        # socket (the rider's socket, closed, leaves nothing behind)
        await wait_until(lambda: (fanout.channels, fanout.listeners) == (1, 1), timeout=10)
    finally:
        for ws in held:
            await ws.close()
    fanout = resources_of(live_server.app).fanout
    await wait_until(lambda: fanout.listeners == 1, timeout=10)  # the sessions' listener
