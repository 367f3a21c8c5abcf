"""Credentials and bearer tokens. Services take the session first and never commit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cache

import jwt
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.identity.models import User
from server.kit.errors import Unauthorized

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
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm=_ALGORITHM), expires


def decode_token(token: str, *, key: str, now: datetime) -> uuid.UUID:
    """The user id a token names; expiry is judged by the server clock, not the wall."""
    try:
        claims = jwt.decode(
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
        if expires <= now.timestamp():
            raise Unauthorized("token expired", code="token_expired")
        return uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized("invalid token", code="invalid_token") from None


async def authenticate(session: AsyncSession, *, login: str, secret: str) -> User:
    user = (await session.exec(select(User).where(User.login == login))).first()
    usable = user if user is not None and user.is_active else None
    # one hash check on every path: the answer's timing does not tell which accounts exist
    if not await check_secret(secret, usable.secret_hash if usable else None) or usable is None:
        raise Unauthorized("wrong login or secret", code="invalid_credentials")
    return usable


async def get_active_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("user no longer exists", code="invalid_token")
    return user
