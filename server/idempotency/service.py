"""``Idempotency-Key``: the first answer to (user, key) is stored for 24 h and replayed.

The work takes the key's claim in its first transaction (``Claim.take``) and stores its
answer in its last (``Claim.answer``): a checkout spends no transaction of its own on
either. Two concurrent requests with one key cannot both run: the second's claim waits
for the first's transaction and then finds the key taken (409 until it has answered).
The same key with a different request body is a 422. A refusal rolls the claim back with
the rest of the work; its answer is stored afterwards (unless another request took the
key meanwhile: then neither had done anything). A refusal after the claim's transaction
committed is no answer: part of the work stands (a placed order), so the claim is kept
for the retry to resume it, as after a 5xx (409 ``request_in_progress``).

A request that crashed (or answered 5xx) after its claim committed leaves it unanswered
and marked abandoned (unmarked if its process died: then abandoned once ``ABANDONED_AFTER`` old); a
retry takes it over and runs the work again with the same attempt id, so the work can
find what the first try made (a checkout names its order by it) instead of doing it
twice or refusing it.

A claim taken over is the retry's: the attempt it was taken from may still be running
(it outlived ``ABANDONED_AFTER``: a starved process, a provider slower than its timeout),
and from then on it must not undo its work, which the retry is resuming. The claim's
version (the row's ``xmin``: every write to the row makes a new one) fences it out:
``release`` (undo, so a retry starts afresh) and the abandon mark act only on the claim
as this attempt took it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.sql.expression import bindparam
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import db, uow
from server.kit.errors import PROBLEM_JSON, DomainError, InProgress, Unprocessable

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=24)
# longer than any request runs (pool waits and the provider's timeout included)
ABANDONED_AFTER = timedelta(seconds=60)
_ATTEMPTS = uuid.UUID("5d8f3c1e-6b0a-4f57-9a43-2f6e1c9b7d20")  # uuid5 namespace

# a fresh claim, one past its retention, or (same request) one abandoned unanswered; an
# abandoned claim keeps its created_at, so a retry gets the first attempt's id.
# Unanswered, ``body`` is NULL while running and ABANDONED once the attempt crashed.
# ``fresh``: inserted now (xmax 0), so no earlier attempt of the key did anything.
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
    RETURNING created_at, xmax = 0 AS fresh, xmin::text AS version""")
_TAKEN = text(
    "SELECT request_hash, status_code, body FROM idempotency_keys "
    "WHERE user_id = :user AND key = :key"
)
ABANDONED = "abandoned"
# the claim as this attempt took it only (``version``): a retry may have taken it over
_ABANDON = text("""
    UPDATE idempotency_keys SET body = :body
    WHERE user_id = :user AND key = :key AND xmin::text = :version
      AND status_code IS NULL""").bindparams(bindparam("body", type_=JSONB))
# the answer of this claim (``created``), whichever attempt of it answers: an attempt
# taken over resumes the same work and answers alike
_STORE = text("""
    UPDATE idempotency_keys SET status_code = :status, body = :body
    WHERE user_id = :user AND key = :key AND created_at = :created""").bindparams(
    bindparam("body", type_=JSONB)
)
# an answer after the work's transactions: into our claim, or (the claim rolled back with
# a refusal) a row of its own, never over another request's claim
_STORE_AFTER = text("""
    INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, body, created_at)
    VALUES (:user, :key, :hash, :status, :body, :created)
    ON CONFLICT (user_id, key) DO UPDATE SET status_code = EXCLUDED.status_code,
      body = EXCLUDED.body
      WHERE idempotency_keys.created_at = EXCLUDED.created_at
        AND idempotency_keys.status_code IS NULL""").bindparams(bindparam("body", type_=JSONB))
_FORGET = text(
    "DELETE FROM idempotency_keys WHERE user_id = :u AND key = :k AND xmin::text = :version "
    "AND status_code IS NULL RETURNING 1"
)


def request_fingerprint(method: str, path: str, body: Any) -> str:
    raw = json.dumps([method, path, body], sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


class _KeyTaken(Exception):
    """The key is another request's (running, or answered: ``replay``) or was used with
    another request (``refusal``)."""

    def __init__(
        self, *, replay: JSONResponse | None = None, refusal: DomainError | None = None
    ) -> None:
        super().__init__("idempotency key taken")
        self.replay, self.refusal = replay, refusal


class _OtherAttempt(Exception):
    """The claim taken over an abandoned one: the work runs again as that attempt."""


@dataclass
class Claim:
    """One request's claim of (user, key), taken and answered in the work's transactions.
    ``render`` turns the work's result into its answer (status, body)."""

    user_id: uuid.UUID
    key: str
    fingerprint: str
    now: datetime
    render: Callable[[Any], tuple[int, Any]]
    created_at: datetime | None = None  # the row's (a takeover keeps the first attempt's)
    version: str | None = None  # the row's xmin as this attempt took it (module docstring)
    committed: bool = False  # the claim's transaction committed: the row is ours
    answer_stored: tuple[int, Any] | None = None  # committed with the work's transaction

    @property
    def attempt_id(self) -> uuid.UUID:
        created = self.created_at or self.now
        return uuid.uuid5(_ATTEMPTS, f"{self.user_id}/{self.key}/{created.isoformat()}")

    async def take(self, session: AsyncSession, *, attempt_id: uuid.UUID) -> bool:
        """Claim the key in the work's first transaction (first, so nothing is done
        when it is taken). ``attempt_id``: the one the work runs as. True when no earlier
        attempt can have done anything (the key is new)."""
        claimed = await (
            await db.execute(
                session,
                _CLAIM,
                {
                    "user": self.user_id,
                    "key": self.key,
                    "hash": self.fingerprint,
                    "now": self.now,
                    "expired": self.now - RETENTION,
                    "abandoned": self.now - ABANDONED_AFTER,
                },
            )
        ).fetchone()
        if claimed is None:
            raise _taken((await session.execute(_TAKEN, self._who())).one(), self.fingerprint)
        self.created_at, fresh, self.version = claimed
        if self.attempt_id != attempt_id:
            raise _OtherAttempt()

        async def committed() -> None:
            self.committed = True

        uow.after_commit(session, committed)
        return bool(fresh)

    async def answer(self, session: AsyncSession, result: Any) -> None:
        """Store the work's answer in its (last) transaction."""
        status, body = answer = self.render(result)
        await db.execute(
            session,
            _STORE,
            {"status": status, "body": Jsonb(body), "created": self.created_at, **self._who()},
        )

        async def stored() -> None:
            self.answer_stored = answer

        uow.after_commit(session, stored)

    async def release(self, session: AsyncSession) -> None:
        """Drop the claim in the work's transaction, before the work undoes what it did, so
        a retry starts afresh, as a new attempt. ``InProgress`` (the transaction rolls
        back, nothing is undone) when the claim is no longer as this attempt took it: a
        retry took it over and is resuming the work (or has answered it). First in the
        transaction, it also keeps a takeover from starting until the undoing is done."""
        gone = await session.execute(
            _FORGET, {"u": self.user_id, "k": self.key, "version": self.version}
        )
        if gone.first() is None:
            raise InProgress(
                "a retry of this request with the same Idempotency-Key took it over; "
                "retry for its answer"
            )

        async def released() -> None:
            self.committed = False

        uow.after_commit(session, released)

    def _who(self) -> dict[str, Any]:
        return {"user": self.user_id, "key": self.key}


def _taken(row: Any, fingerprint: str) -> _KeyTaken:
    if row.request_hash != fingerprint:
        return _KeyTaken(
            refusal=Unprocessable(
                "this Idempotency-Key was used with a different request",
                code="idempotency_key_reused",
            )
        )
    if row.status_code is None:
        return _KeyTaken(
            refusal=InProgress(
                "a request with this Idempotency-Key is still running (or stopped "
                "without an answer: retry in a minute)"
            )
        )
    return _KeyTaken(replay=_response(row.status_code, row.body, replayed=True))


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    claim: Claim,
    work: Callable[[uuid.UUID, Claim], Awaitable[Any]],
) -> JSONResponse:
    """Run ``work`` once per (user, key); replays get the stored (status, body). ``work``
    gets the attempt id (the same on a retry after a crash, or after a 5xx answer once
    the claim's transaction had committed; new after a 5xx before it, or after the work
    released its claim) and the claim, which it must take first in its first transaction
    and answer in its last."""
    if not 1 <= len(claim.key) <= 100:
        raise Unprocessable(
            "Idempotency-Key must be 1 to 100 characters", code="invalid_idempotency_key"
        )
    try:
        for _ in range(2):  # once more as the abandoned attempt a takeover found
            try:
                result = await work(claim.attempt_id, claim)
                break
            except _OtherAttempt:
                continue
        else:
            raise InProgress("a request with this Idempotency-Key changed hands; retry")
    except _KeyTaken as taken:
        if taken.refusal is not None:
            raise taken.refusal from None
        assert taken.replay is not None
        return taken.replay
    except DomainError as exc:
        if exc.status >= 500 or isinstance(exc, InProgress):
            # not an answer: rolled back with the work, the claim is gone and a retry
            # starts afresh; committed, part of the work stands (a checkout placed and
            # charged its order) and a retry takes the claim over to resume it
            await _abandon(sessions, claim)
            raise
        if claim.committed:
            # refused after the claim's transaction committed: the work's first part stands
            # (a checkout's order is placed), so the refusal is not the key's answer; a
            # retry takes the claim over and resumes that work
            log.warning(
                "a request was refused after its work began; left for its retry",
                extra={"code": exc.code, "detail": exc.detail},
            )
            await _abandon(sessions, claim)
            raise InProgress(
                f"this request was interrupted after it began ({exc.detail}); retry with "
                "the same Idempotency-Key to finish it"
            ) from exc
        return await _store_after(sessions, claim, exc.status, exc.problem())
    except BaseException:
        # a crash is not an answer, and part of the work may stand: a retry takes the
        # claim over and finds that part by the same attempt id
        await _abandon(sessions, claim)
        raise
    if claim.answer_stored is not None:
        return _response(*claim.answer_stored, replayed=False)
    return await _store_after(sessions, claim, *claim.render(result))


async def _store_after(
    sessions: async_sessionmaker[AsyncSession], claim: Claim, status: int, body: Any
) -> JSONResponse:
    async with sessions() as s:
        await s.execute(
            _STORE_AFTER,
            {
                "status": status,
                "body": body,
                "hash": claim.fingerprint,
                "created": claim.created_at or claim.now,
                **claim._who(),
            },
        )
        await s.commit()
    return _response(status, body, replayed=False)


async def _abandon(sessions: async_sessionmaker[AsyncSession], claim: Claim) -> None:
    if not claim.committed:
        return  # rolled back with the work: there is no claim to mark
    try:
        async with sessions() as s:
            await s.execute(_ABANDON, {"body": ABANDONED, "version": claim.version, **claim._who()})
            await s.commit()
    except Exception:
        # unmarked, the claim is taken over once ABANDONED_AFTER old
        log.exception("could not mark an idempotency claim abandoned")


def _response(status: int, body: Any, *, replayed: bool) -> JSONResponse:
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(
        body,
        status_code=status,
        media_type=media,
        headers={"Idempotent-Replayed": "true" if replayed else "false"},
    )
