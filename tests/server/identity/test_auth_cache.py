"""The cached auth state (``identity.service.current_user``): a request's user comes from
Redis, yet a logout on one replica is refused at once by another, a read begun before a
logout cannot cache the old state again, and a Redis that lost its keys only sends the
check back to PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect as sa_inspect

from server.app import create_app
from server.identity import service
from server.identity.models import User
from server.kit import keys, scripts
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.redis import get_many
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Services
from tests.helpers import driver_statements, login
from tests.server.flash.flash_helpers import make_customers

CUSTOMER = ("customer.001", DEMO_SECRETS[Role.CUSTOMER])


@pytest.fixture
async def replica(settings: Settings, clock: Clock, app: FastAPI) -> AsyncIterator[FastAPI]:
    """A second app on the same PostgreSQL and Redis (another replica)."""
    other = create_app(settings, clock=clock)
    async with other.router.lifespan_context(other):
        yield other


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://qc.test")


async def test_a_logout_on_one_replica_is_refused_at_once_by_another(
    city: Services, app: FastAPI, replica: FastAPI
) -> None:
    async with _client(app) as one, _client(replica) as two:
        headers = await login(one, *CUSTOMER)
        me = await two.get("/v1/me", headers=headers)  # cached by the second replica
        assert me.status_code == 200
        assert await resources_of(app).redis.get(keys.auth_user(me.json()["id"])) is not None
        assert (await one.post("/v1/auth/logout", headers=headers)).status_code == 204
        refused = await two.get("/v1/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "token_revoked"
        # a new login works on both, and is cached again
        fresh = await login(two, *CUSTOMER)
        assert (await one.get("/v1/me", headers=fresh)).status_code == 200
        cached = await resources_of(app).redis.get(keys.auth_user(me.json()["id"]))
        assert cached is not None and not scripts.text(cached).startswith("revoked:")


async def test_a_read_from_before_the_logout_is_not_cached_again(
    city: Services, app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await login(client, *CUSTOMER)
    user_id = (await client.get("/v1/me", headers=headers)).json()["id"]
    redis, key = resources_of(app).redis, keys.auth_user(user_id)
    now = resources_of(app).clock.now()
    before = service._micros(now - timedelta(seconds=1))
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    mark = await redis.get(key)
    assert mark is not None and scripts.text(mark).startswith("revoked:")
    # a request that read PostgreSQL before the logout committed tries to fill the cache
    stale = await scripts.run(
        redis, "identity/fill", keys=[key], args=['{"stale": true}', before, 300]
    )
    assert stale == 0 and await redis.get(key) == mark
    refused = await client.get("/v1/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"


async def test_without_the_cache_the_check_is_postgresqls(
    city: Services, app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await login(client, *CUSTOMER)
    user_id = (await client.get("/v1/me", headers=headers)).json()["id"]
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    redis = resources_of(app).redis
    await redis.delete(keys.auth_user(user_id))  # Redis lost the mark
    refused = await client.get("/v1/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    fresh = await login(client, *CUSTOMER)
    assert (await client.get("/v1/me", headers=fresh)).status_code == 200


async def test_a_cold_users_read_is_one_statement_and_the_cached_user_is_the_same(
    city: Services, app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A request whose user is not cached reads PostgreSQL with one statement and no
    transaction round trips (``db.autocommit``), and gets the User a later request that
    finds the state cached gets."""
    headers = await login(client, *CUSTOMER)
    me = (await client.get("/v1/me", headers=headers)).json()
    resources = resources_of(app)
    await resources.redis.delete(keys.auth_user(me["id"]))
    with driver_statements(commands=True) as sent:
        cold = await client.get("/v1/me", headers=headers)
    assert cold.status_code == 200 and cold.json() == me
    assert len(sent) == 1 and sent[0].startswith("SELECT id, login"), sent  # no BEGIN/ROLLBACK
    cached = await resources.redis.get(keys.auth_user(me["id"]))
    assert cached is not None  # filled by the cold read
    # the User a request that finds the state cached gets is the cold read's own
    users = await service.load_users(resources.redis, resources.sessions, [uuid.UUID(me["id"])])
    again = await service.current_user(
        resources.redis,
        resources.sessions,
        claims=service.decode_token(
            headers["Authorization"].split()[1],
            key=resources.settings.secret_key_value(),
            now=resources.clock.now(),
        ),
    )
    assert users[0] is again


@pytest.mark.cluster  # one MGET on a single server, one per slot on a cluster
async def test_one_turns_reads_of_cached_and_cold_users_each_get_their_own(
    city: Services, app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The auth reads of one event-loop turn go to Redis together (``get_many``): each
    request gets its own user, whether its state was cached or read from PostgreSQL."""
    resources = resources_of(app)
    # six customers no request has read yet, then three of them read once (cached)
    customers = make_customers(city.database_url, resources.clock, 6)
    claims = [
        service.decode_token(
            h["Authorization"].split()[1],
            key=resources.settings.secret_key_value(),
            now=resources.clock.now(),
        )
        for _, h in customers
    ]
    for warm in claims[1::2]:
        await service.current_user(resources.redis, resources.sessions, claims=warm)
    names = [keys.auth_user(str(c.user_id)) for c in claims]
    assert [v is None for v in await get_many(resources.redis, names)] == [True, False] * 3
    users = await asyncio.gather(
        *(service.current_user(resources.redis, resources.sessions, claims=c) for c in claims)
    )
    # make_customers' logins: each state read is its own customer's, not a neighbour's
    assert [(u.id, u.login) for u in users] == [
        (uid, f"fc.{i}.{uid.hex[:6]}") for i, (uid, _) in enumerate(customers)
    ]
    assert None not in await get_many(resources.redis, names)  # the cold ones cached now


async def test_a_cached_states_user_is_the_rows_as_the_orm_loads_it(
    city: Services, app: FastAPI
) -> None:
    """The User a cached state makes (built past the ORM's attribute events) holds what the
    row holds, as the ORM loads it, and is in no session (nothing flushes it)."""
    resources = resources_of(app)
    ((user_id, _),) = make_customers(city.database_url, resources.clock, 1)
    async with resources.sessions() as session:
        row = await session.get(User, user_id)
        assert row is not None
        await service.revoke_tokens(
            session, resources.redis, user_id=user_id, now=resources.clock.now(), token_ttl_s=60
        )
        await session.commit()
        await session.refresh(row)
    await resources.redis.delete(keys.auth_user(str(user_id)))
    (user,) = await service.load_users(resources.redis, resources.sessions, [user_id])
    assert user is not None
    cached = set(User.model_fields) - {"secret_hash", "created_at"}  # no request reads those
    assert {f: getattr(user, f) for f in cached} == {f: getattr(row, f) for f in cached}
    assert user.tokens_valid_after is not None  # the revocation's time came through
    assert user.model_fields_set == set(User.model_fields) - {"created_at"}
    assert sa_inspect(user).transient


def test_a_processs_first_user_from_a_cached_state_can_be_read() -> None:
    """A worker whose first User comes from a cached state (no ``User(...)`` before it to
    configure the ORM's mappers) can read its columns: a flash crowd's room, whose first
    request is a cold join."""
    entry = orjson.dumps(
        {
            "login": "c",
            "name": "n",
            "role": "customer",
            "phone": None,
            "store_id": None,
            "city_id": None,
            "is_active": True,
            "tokens_valid_after": 0,
        }
    ).decode()
    program = (
        "import sys, uuid\n"
        "from server.identity.service import _user_of\n"
        "user = _user_of(uuid.uuid4(), sys.argv[1])\n"
        "print(user.is_active, user.login)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, entry], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "c"]
