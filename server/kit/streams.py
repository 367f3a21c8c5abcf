"""Redis streams applied to PostgreSQL in batches, each entry exactly once: the machinery
the inventory's soft-hold journal (``invlog:{S}``) and the riders' location history
(``riderlog:{C}``) share.

A writer locks the shard's row in an offsets table (the last stream id PostgreSQL holds),
reads the entries after it, writes them and moves the offset in the same transaction.
A writer that dies before its commit leaves the offset where it was, so the next one
applies the same entries; after a commit the stream is trimmed up to the offset (a trim
lost with a dying process is harmless: readers start after the offset anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property

import redis.asyncio as aioredis
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import db, fencing, uow

Entry = tuple[str, dict[str, str]]  # stream id, fields


@dataclass(frozen=True)
class Offsets:
    """An offsets table: one row per shard, keyed by ``key``, with ``applied_id``. Its
    statements are built once and sent past SQLAlchemy (``db.execute``): a checkout that
    catches its store's journal up polls ``unless_covered`` while another writer applies,
    and through the ORM each poll cost ~0.4 ms of CPU (the statement's text built again,
    then SQLAlchemy's execution and result)."""

    table: str
    key: str

    @cached_property
    def _lock(self) -> TextClause:
        return text(f"""
            INSERT INTO {self.table} ({self.key}, applied_id, applied_at)
            VALUES (:s, '0-0', now())
            ON CONFLICT ({self.key}) DO UPDATE SET {self.key} = EXCLUDED.{self.key}
            RETURNING applied_id""")

    @cached_property
    def _unless_covered(self) -> TextClause:
        return text(f"""
            SELECT c.applied_id, (
              SELECT l.applied_id FROM {self.table} l WHERE l.{self.key} = :s
                AND (split_part(c.applied_id, '-', 1)::bigint,
                     split_part(c.applied_id, '-', 2)::bigint) < (:ms, :seq)
              FOR UPDATE SKIP LOCKED)
            FROM {self.table} c WHERE c.{self.key} = :s""")

    @cached_property
    def _advance(self) -> TextClause:
        return text(
            f"UPDATE {self.table} SET applied_id = :id, applied_at = now() WHERE {self.key} = :s"
        )

    async def lock(self, session: AsyncSession, shard: str) -> str:
        """The shard's applied id, its row locked (created at ``0-0``) until the end of
        the caller's transaction: concurrent writers of a shard queue here."""
        found = await (await db.execute(session, self._lock, {"s": shard})).fetchone()
        assert found is not None  # the upsert returns its row
        return str(found[0])

    async def unless_covered(
        self, session: AsyncSession, shard: str, wanted: str
    ) -> tuple[str | None, str | None]:
        """In one round trip: the applied id as last committed (None before the first
        write) and, unless it already covers ``wanted``, the applied id with the row
        locked (None if another transaction holds it)."""
        ms, seq = (int(x) for x in wanted.split("-"))
        found = await db.execute(session, self._unless_covered, {"s": shard, "ms": ms, "seq": seq})
        row = await found.fetchone()
        if row is None:
            return None, None
        return str(row[0]), None if row[1] is None else str(row[1])

    async def advance(self, session: AsyncSession, shard: str, applied: str) -> None:
        await db.execute(session, self._advance, {"s": shard, "id": applied})


def as_text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


async def read_after(redis: aioredis.Redis, stream: str, applied: str, limit: int) -> list[Entry]:
    """Up to ``limit`` entries after ``applied``, oldest first."""
    raw = await redis.xrange(stream, min=f"({applied}", count=limit)
    return [
        (as_text(entry_id), {as_text(k): as_text(v) for k, v in (fields or {}).items()})
        for entry_id, fields in raw or []
    ]


def after_or_at(applied: str, wanted: str) -> bool:
    a, b = (tuple(int(x) for x in v.split("-")) for v in (applied, wanted))
    return a >= b


def trim_after_commit(
    session: AsyncSession,
    redis: aioredis.Redis,
    stream: str,
    applied: str,
    *,
    hint: str | None = None,
) -> None:
    """Once the caller's transaction commits: drop the entries up to ``applied`` from the
    stream, and write ``applied`` to ``hint`` (a key scripts may read) if given."""

    async def trim() -> None:
        ms, seq = applied.split("-")
        pipe = redis.pipeline(transaction=False)
        if hint is not None:
            pipe.set(hint, applied)
        pipe.xtrim(stream, minid=f"{ms}-{int(seq) + 1}", approximate=False)
        await pipe.execute()

    uow.after_commit(session, trim)


async def lengths(redis: aioredis.Redis, streams: list[str]) -> list[int]:
    """How many entries each stream holds (one round trip)."""
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    return [int(n) for n in await pipe.execute()]


async def drain_waiting(
    redis: aioredis.Redis,
    shards: list[str],
    *,
    stream_of: Callable[[str], str],
    drain_one: Callable[[str], Awaitable[int]],
) -> int:
    """The writer's run: drain every shard whose stream holds entries (one length read)."""
    waiting = await lengths(redis, [stream_of(shard) for shard in shards])
    total = 0
    for shard, length in zip(shards, waiting, strict=True):
        if length:
            total += await drain_one(shard)
    return total


async def drain(
    db: AsyncEngine, apply: Callable[[AsyncSession], Awaitable[int]], *, batch: int
) -> int:
    """Run ``apply`` (one shard's writer, returning the entries it applied) in its own
    transactions until a run applies less than ``batch``: the whole shard, now. Inside a
    leased run each commit is fenced: a writer that lost its lease applies nothing."""
    total = 0
    while True:
        async with AsyncSession(db, expire_on_commit=False) as session:
            try:
                n = await apply(session)
                if n:
                    await fencing.check(session)
            except BaseException:
                await uow.rollback(session)
                raise
            await uow.commit(session)
        total += n
        if n < batch:
            return total
