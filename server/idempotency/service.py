"""``Idempotency-Key``: the first answer to (user, key) is stored for 24 h and replayed.

The key is claimed in its own committed transaction before the work starts, so two
concurrent requests with one key cannot both run: the second gets 409 until the first
has answered. The same key with a different request body is a 422.

A request that crashed before answering leaves its claim unanswered and marked
abandoned (unmarked if its process died: then abandoned once ``ABANDONED_AFTER`` old); a
retry takes it over and runs the work again with the same attempt id, so the work can
find what the first try made (a checkout names its order by it) instead of doing it
twice or refusing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
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

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=24)
# longer than any request runs (pool waits and the provider's timeout included)
ABANDONED_AFTER = timedelta(seconds=60)
_ATTEMPTS = uuid.UUID("5d8f3c1e-6b0a-4f57-9a43-2f6e1c9b7d20")  # uuid5 namespace

# a fresh claim, one past its retention, or (same request) one abandoned unanswered; an
# abandoned claim keeps its created_at, so a retry gets the first attempt's id.
# Unanswered, ``body`` is NULL while running and ABANDONED once the attempt crashed.
_CLAIM = text("""
    INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)
    VALUES (:user, :key, :hash, :now)
    ON CONFLICT (user_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
      status_code = NULL, body = NULL,
      created_at = CASE WHEN idempotency_keys.created_at < :expired
        THEN EXCLUDED.created_at ELSE idempotency_keys.created_at END
      WHERE idempotency_keys.created_at < :expired
        OR (idempotency_keys.status_code IS NULL
            AND idempotency_keys.request_hash = EXCLUDED.request_hash
            AND (idempotency_keys.body IS NOT NULL OR idempotency_keys.created_at < :abandoned))
    RETURNING created_at""")
ABANDONED = "abandoned"
_ABANDON = text("""
    UPDATE idempotency_keys SET body = :body
    WHERE user_id = :user AND key = :key AND status_code IS NULL""").bindparams(
    bindparam("body", type_=JSONB)
)
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
    work: Callable[[uuid.UUID], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run ``work`` once per (user, key); replays get the stored (status, body). ``work``
    gets the attempt id: the same on a retry after a crash, new after a 5xx answer (which
    is forgotten, so the retry starts afresh)."""
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
                    "abandoned": now - ABANDONED_AFTER,
                },
            )
        ).first()
        await s.commit()
        if claimed is not None:
            attempt_id = uuid.uuid5(_ATTEMPTS, f"{user_id}/{key}/{claimed.created_at.isoformat()}")
        else:
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
                    "a request with this Idempotency-Key is still running (or stopped "
                    "without an answer: retry in a minute)",
                    code="request_in_progress",
                )
            return _response(row.status_code, row.body, replayed=True)
    try:
        status, body = await work(attempt_id)
    except DomainError as exc:
        if exc.status >= 500:
            await _forget(sessions, user_id, key)  # nothing was done: a retry starts afresh
            raise
        status, body = exc.status, exc.problem()
    except BaseException:
        # a crash is not an answer, and part of the work may stand: a retry takes the
        # claim over and finds that part by the same attempt id
        await _abandon(sessions, user_id, key)
        raise
    async with sessions() as s:
        await s.execute(_STORE, {"status": status, "body": body, "user": user_id, "key": key})
        await s.commit()
    return _response(status, body, replayed=False)


async def _abandon(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, key: str
) -> None:
    try:
        async with sessions() as s:
            await s.execute(_ABANDON, {"body": ABANDONED, "user": user_id, "key": key})
            await s.commit()
    except Exception:
        # unmarked, the claim is taken over once ABANDONED_AFTER old
        log.exception("could not mark an idempotency claim abandoned")


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
