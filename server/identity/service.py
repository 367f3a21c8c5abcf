"""Credentials and bearer tokens. Services take the session first and never commit.

A request's user comes from Redis (``keys.auth_user``: the user's auth state, 5 min),
read from PostgreSQL on a miss. A revocation (logout, disable) writes PostgreSQL and
replaces the entry with a revocation mark in the same transaction, before it commits:
once the logout has answered, no replica takes the old tokens; a read begun before the
commit cannot put the old state back (``identity/fill.lua`` refuses a read older than the
mark); and a Redis that lost its keys only sends requests back to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

import jwt
import orjson
import redis.asyncio as aioredis
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import ClassManager, configure_mappers
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from server.identity.models import User
from server.kit import db, keys, scripts
from server.kit.cache import TTLCache
from server.kit.coalesce import TurnBatcher
from server.kit.errors import Unauthorized
from server.kit.redis import get_many

# scrypt parameters: ~30 ms per check on a laptop core; PINs are short, so login is
# also rate limited (identity.throttle) and the hash is never exposed.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_ALGORITHM = "HS256"


def _lower_priority() -> None:
    """A hashing thread yields the CPU to the serving threads (Linux nices threads)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


# Checks run on these threads, never on the event loop (scrypt releases the GIL): a login
# flood queues here, on half the cores at low priority, while every other request keeps
# being served.
_HASHERS = ThreadPoolExecutor(
    max_workers=max(1, (os.cpu_count() or 2) // 2),
    thread_name_prefix="scrypt",
    initializer=_lower_priority,
)


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


@cache
def _dummy_hash() -> str:
    """Checked for unknown or disabled accounts, so they take as long as a real one."""
    return hash_secret(secrets.token_hex(8))


async def check_secret(secret: str, stored: str | None) -> bool:
    """``verify_secret`` on a hashing thread; with no stored hash, a dummy one (False)."""
    loop = asyncio.get_running_loop()
    matches = await loop.run_in_executor(
        _HASHERS, verify_secret, secret, stored if stored is not None else _dummy_hash()
    )
    return matches and stored is not None


def issue_token(user: User, *, key: str, now: datetime, ttl_s: int) -> tuple[str, datetime]:
    expires = now + timedelta(seconds=ttl_s)
    claims = {
        "sub": str(user.id),
        "role": user.role,
        # to the microsecond: a logout revokes what was issued before it, not a login
        # in the same second after it
        "iat": now.timestamp(),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm=_ALGORITHM), expires


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    issued_at: float  # Unix seconds (server clock)
    expires_at: float


def decode_token(token: str, *, key: str, now: datetime) -> TokenClaims:
    """What a valid token says; expiry is judged by the server clock, not the wall."""
    try:
        claims = _verified(token, key)
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized("invalid token", code="invalid_token") from None
    if claims.expires_at <= now.timestamp():
        raise Unauthorized("token expired", code="token_expired")
    return claims


# the header segment ``issue_token`` writes (PyJWT's, keys sorted): a token with it and
# the canonical signature of its key is checked here by one HMAC (PyJWT spent ~100 µs
# of a crowd's first requests); anything else is PyJWT's to accept or refuse
_HEADER = jwt.encode({}, "k" * 32, algorithm=_ALGORITHM).split(".")[0]
_ISSUED = frozenset({"sub", "role", "iat", "exp", "jti"})  # the claims issue_token writes


def _own_claims(token: str, key: str) -> dict[str, Any] | None:
    """The claims of a token this server signed with ``key`` in the form ``issue_token``
    writes, or None (PyJWT decides then)."""
    header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    if header != _HEADER or not payload or "." in signature:
        return None
    digest = hmac.digest(key.encode(), f"{header}.{payload}".encode(), "sha256")
    canonical = base64.urlsafe_b64encode(digest).rstrip(b"=")
    if not hmac.compare_digest(canonical, signature.encode()):
        return None
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not (
        isinstance(claims, dict)
        and claims.keys() <= _ISSUED
        and isinstance(claims.get("sub"), str)
        and "exp" in claims
        and isinstance(claims.get("jti", ""), str)
    ):
        return None
    return claims


# a token's signature and claims never change: checked once per process (a client sends
# the same token with every request); failures are not cached
@lru_cache(maxsize=10_000)
def _verified(token: str, key: str) -> TokenClaims:
    claims = _own_claims(token, key) or jwt.decode(
        token,
        key,
        algorithms=[_ALGORITHM],
        options={
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
            "require": ["sub", "exp"],
        },
    )
    expires = claims["exp"]
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise ValueError("exp is not a number")
    issued = claims.get("iat", 0)
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        raise ValueError("iat is not a number")
    return TokenClaims(uuid.UUID(str(claims["sub"])), float(issued), float(expires))


async def authenticate(session: AsyncSession, *, login: str, secret: str) -> User:
    user = (await session.exec(select(User).where(User.login == login))).first()
    usable = user if user is not None and user.is_active else None
    # one hash check on every path: the answer's timing does not tell which accounts exist
    if not await check_secret(secret, usable.secret_hash if usable else None) or usable is None:
        raise Unauthorized("wrong login or secret", code="invalid_credentials")
    return usable


AUTH_TTL_S = 300  # a cached auth state is read again from PostgreSQL after this
_REVOKED = "revoked:"  # a revocation mark: "revoked:<tokens_valid_after, unix us>"
_CACHED = ("login", "name", "role", "phone", "store_id", "city_id", "is_active")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# the User of a cached entry, built once per process (an entry is immutable: a change
# writes another); shared by requests, which only read it
_built: TTLCache[User] = TTLCache(AUTH_TTL_S)


def _micros(moment: datetime | None) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) if moment is not None else 0


def _checked(user: User | None, claims: TokenClaims) -> User:
    if user is None or not user.is_active:
        raise Unauthorized("user no longer exists", code="invalid_token")
    if user.tokens_valid_after and claims.issued_at < user.tokens_valid_after.timestamp():
        raise Unauthorized("the token was revoked (logged out)", code="token_revoked")
    return user


async def _read_states(redis: aioredis.Redis, names: list[str]) -> list[Any]:
    if len(names) == 1:
        return [await redis.get(names[0])]
    return await get_many(redis, names)


# the users' cached columns (``_CACHED``, then ``tokens_valid_after``), past the ORM: a
# crowd's cold joins each made an ORM object, then a state of it, then a User of that
# (the ORM's query and objects were ~12 % of a waiting room's CPU at 20,000 cold joins)
_STATES_BY_ID = text(
    f"SELECT id, {', '.join(_CACHED)}, tokens_valid_after FROM users "
    "WHERE id = ANY(CAST(:ids AS uuid[]))"
)


def _user_of(user_id: uuid.UUID, entry: str) -> User:
    """The User of a cached auth state (no secret: nothing on a request's path reads it),
    made as the ORM makes a row it loads: a new instance of the mapped class, its columns
    set in its ``__dict__`` (``User(...)`` set each through SQLAlchemy's attribute events:
    63 µs of each crowd customer's first join, ~7 % of a waiting room's CPU; this, ~10)."""
    state = orjson.loads(entry)
    valid_after = state.pop("tokens_valid_after")
    state.update(
        id=user_id,
        secret_hash="",
        tokens_valid_after=datetime.fromtimestamp(valid_after / 1e6, UTC) if valid_after else None,
    )
    user: User = _user_maker().new_instance()
    user.__dict__.update(state, created_at=None)  # not cached: nothing on a request reads it
    object.__setattr__(user, "__pydantic_fields_set__", set(state))
    return user


@cache
def _user_maker() -> ClassManager[User]:
    """The ORM's maker of Users, the mappers configured first (``User(...)`` configures
    them at a process's first User; ``new_instance`` does not, and an unconfigured column
    cannot be read)."""
    configure_mappers()
    return sa_inspect(User).class_manager


async def load_users(
    redis: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    ids: list[uuid.UUID],
) -> list[User | None]:
    """The users of one turn's cache misses by one statement, their states cached by one
    pipeline (one ``identity/fill`` each); also how ``qc bench flash --warm-auth`` caches
    a crowd's states before a sale. Each User is the one its state makes (``_built``), as
    a later request that finds the state cached gets it."""
    async with sessions() as session:
        await db.autocommit(session)  # one read: no BEGIN and ROLLBACK round trips
        found = await db.execute(session, _STATES_BY_ID, {"ids": list(set(ids))})
        rows = await found.fetchall()
    entries: dict[uuid.UUID, str] = {}
    fills = []
    for user_id, *cached, valid_after in rows:
        state: dict[str, Any] = dict(zip(_CACHED, cached, strict=True))
        state["tokens_valid_after"] = _micros(valid_after)
        entries[user_id] = entry = orjson.dumps(state).decode()
        fills.append((keys.auth_user(str(user_id)), entry, state["tokens_valid_after"]))
    if fills:  # fill.lua writes only over nothing or a mark its read includes: rerunnable
        await scripts.run_each(
            redis, "identity/fill", [([k], [entry, after, AUTH_TTL_S]) for k, entry, after in fills]
        )
    return [await _built_user(i, entries[i]) if i in entries else None for i in ids]


async def _built_user(user_id: uuid.UUID, entry: str) -> User:
    async def build() -> User:
        return _user_of(user_id, entry)

    return await _built.get_or_load((user_id, entry), build)


# the auth reads of one event-loop turn (a crowd's requests) go to Redis as one pipeline,
# and their misses to PostgreSQL as one query: each request's own read, a call's cost
# paid once per batch; one batch out at a time, the next gathering meanwhile (a crowd's
# cold joins: batches of ~3.7 users each -> ~13, the room's joins 841 -> 1,444 a second)
_state_reads: TurnBatcher[aioredis.Redis, str, Any] = TurnBatcher(
    _read_states, max_items=500, in_flight=1
)
_user_loads: TurnBatcher[
    tuple[aioredis.Redis, async_sessionmaker[AsyncSession]], uuid.UUID, User | None
] = TurnBatcher(lambda on, ids: load_users(*on, ids), max_items=500, in_flight=1)


async def current_user(
    redis: aioredis.Redis, sessions: async_sessionmaker[AsyncSession], *, claims: TokenClaims
) -> User:
    """The token's user, if still active and the token was issued after their last logout,
    from the cached auth state; on a miss (or a revocation mark) from PostgreSQL in a
    transaction of its own, ended before this returns (the caller's
    handler may need the pool's connection), and cached unless a newer mark forbids it.
    Both reads are batched per event-loop turn (``_state_reads``, ``_user_loads``)."""
    raw = await _state_reads.submit(redis, keys.auth_user(str(claims.user_id)))
    cached = scripts.text(raw) if raw is not None else None
    if cached is not None and not cached.startswith(_REVOKED):
        return _checked(await _built_user(claims.user_id, cached), claims)
    return _checked(await _user_loads.submit((redis, sessions), claims.user_id), claims)


async def _mark_revoked(
    redis: aioredis.Redis, *, user_id: uuid.UUID, now: datetime, ttl_s: int
) -> None:
    """Before the revocation commits: the cached state goes (a failure here fails the
    revocation), and no read older than it may be cached again while a token issued
    before ``now`` can live (``ttl_s``)."""
    await redis.set(keys.auth_user(str(user_id)), f"{_REVOKED}{_micros(now)}", ex=ttl_s)


async def revoke_tokens(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    user_id: uuid.UUID,
    now: datetime,
    token_ttl_s: int,
) -> None:
    """Every token of the user issued up to ``now`` stops working (logout, disable)."""
    await session.execute(
        update(User).where(col(User.id) == user_id).values(tokens_valid_after=now)
    )
    await _mark_revoked(redis, user_id=user_id, now=now, ttl_s=token_ttl_s)


async def disable_user(
    session: AsyncSession, redis: aioredis.Redis, *, user: User, now: datetime, token_ttl_s: int
) -> None:
    """The account can no longer log in, and its tokens stop working at once."""
    user.is_active = False
    user.tokens_valid_after = now
    session.add(user)
    await session.flush()
    await _mark_revoked(redis, user_id=user.id, now=now, ttl_s=token_ttl_s)
