"""Credentials and bearer tokens. Services take the session first and never commit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

import jwt
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.identity.models import User
from server.kit.errors import Unauthorized

# scrypt parameters: ~30 ms per check on a laptop core; PINs are short, so login is
# also rate limited and the hash is never exposed.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_ALGORITHM = "HS256"


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
        if claims["exp"] <= now.timestamp():
            raise Unauthorized("token expired", code="token_expired")
        return uuid.UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError):
        raise Unauthorized("invalid token", code="invalid_token") from None


async def authenticate(session: AsyncSession, *, login: str, secret: str) -> User:
    user = (await session.exec(select(User).where(User.login == login))).first()
    if user is None or not user.is_active or not verify_secret(secret, user.secret_hash):
        raise Unauthorized("wrong login or secret", code="invalid_credentials")
    return user


async def get_active_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("user no longer exists", code="invalid_token")
    return user
