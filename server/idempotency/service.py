"""``Idempotency-Key``: the first answer to (user, key) is stored for 24 h and replayed.

The key is claimed in its own committed transaction before the work starts, so two
concurrent requests with one key cannot both run: the second gets 409 until the first
has answered. The same key with a different request body is a 422.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.sql.expression import bindparam
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit.errors import PROBLEM_JSON, Conflict, DomainError, Unprocessable

RETENTION = timedelta(hours=24)

_CLAIM = text("""
    INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)
    VALUES (:user, :key, :hash, :now)
    ON CONFLICT (user_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
      status_code = NULL, body = NULL, created_at = EXCLUDED.created_at
      WHERE idempotency_keys.created_at < :expired
    RETURNING key""")
_STORE = text("""
    UPDATE idempotency_keys SET status_code = :status, body = :body
    WHERE user_id = :user AND key = :key""").bindparams(bindparam("body", type_=JSONB))


def request_fingerprint(method: str, path: str, body: Any) -> str:
    raw = json.dumps([method, path, body], sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    now: datetime,
    work: Callable[[], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run ``work`` once per (user, key); replays get the stored (status, body)."""
    if not 1 <= len(key) <= 100:
        raise Unprocessable(
            "Idempotency-Key must be 1 to 100 characters", code="invalid_idempotency_key"
        )
    async with sessions() as s:
        claimed = (
            await s.execute(
                _CLAIM,
                {
                    "user": user_id,
                    "key": key,
                    "hash": fingerprint,
                    "now": now,
                    "expired": now - RETENTION,
                },
            )
        ).first()
        await s.commit()
        if claimed is None:
            row = (
                await s.execute(
                    text(
                        "SELECT request_hash, status_code, body FROM idempotency_keys "
                        "WHERE user_id = :user AND key = :key"
                    ),
                    {"user": user_id, "key": key},
                )
            ).one()
            if row.request_hash != fingerprint:
                raise Unprocessable(
                    "this Idempotency-Key was used with a different request",
                    code="idempotency_key_reused",
                )
            if row.status_code is None:
                raise Conflict(
                    "a request with this Idempotency-Key is still running",
                    code="request_in_progress",
                )
            return _response(row.status_code, row.body, replayed=True)
    try:
        status, body = await work()
    except DomainError as exc:
        if exc.status >= 500:
            await _forget(sessions, user_id, key)
            raise
        status, body = exc.status, exc.problem()
    except BaseException:
        await _forget(sessions, user_id, key)  # a crash is not an answer: allow a retry
        raise
    async with sessions() as s:
        await s.execute(_STORE, {"status": status, "body": body, "user": user_id, "key": key})
        await s.commit()
    return _response(status, body, replayed=False)


async def _forget(sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, key: str) -> None:
    async with sessions() as s:
        await s.execute(
            text("DELETE FROM idempotency_keys WHERE user_id = :u AND key = :k"),
            {"u": user_id, "k": key},
        )
        await s.commit()


def _response(status: int, body: Any, *, replayed: bool) -> JSONResponse:
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(
        body,
        status_code=status,
        media_type=media,
        headers={"Idempotent-Replayed": "true" if replayed else "false"},
    )
