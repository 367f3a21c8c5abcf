"""A throw-away database and Redis keyspace for benchmarks, beside the user's data."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import db
from server.kit import redis as qredis
from server.kit.config import Settings
from server.kit.migrate import upgrade_to_head
from server.seed.generate import reset_database, seed_city

BENCH_DATABASE = "qc_bench"
BENCH_REDIS_DB = 13


@dataclass
class BenchStack:
    database_url: str
    redis_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    embedded: bool


def one_row(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The row a query must return (an aggregate, a seeded user): none is a broken bench city."""
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise LookupError(f"no row for {sql!r}")
    return row


def _redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def bench_database_url(settings: Settings) -> str:
    """The benchmarks' own database on the configured PostgreSQL."""
    return _with_db(db.resolve_database_url(settings), BENCH_DATABASE)


class BenchDatabaseInUse(RuntimeError):
    """Another client is connected to the benchmarks' database (``_alone_on``)."""


def _alone_on(url: str, *, wait_s: float) -> None:
    """Refuse a bench database another client is connected to: a benchmark still running,
    or the servers of one that was killed, whose requests and loops would change the books
    this run compares (and the Redis database beside them). A server stopped a moment ago
    may leave its backends a little longer: waited for, up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            others, names = one_row(
                conn,
                "SELECT count(*), string_agg(DISTINCT application_name, ', ') "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            if not others:
                return
            if time.monotonic() > deadline:
                raise BenchDatabaseInUse(
                    f"{others} other connection(s) to the benchmarks' database "
                    f"{BENCH_DATABASE} ({names or 'unnamed'}): another benchmark is running, "
                    "or a stopped one's servers still are; stop them and run again"
                )
            time.sleep(0.2)


@asynccontextmanager
async def bench_stack(
    settings: Settings,
    *,
    stores: int = 1,
    skus: int = 5000,
    pool: int = 20,
    customers: int = 1,
    riders: int = 1,
    alone_wait_s: float = 10.0,
) -> AsyncIterator[BenchStack]:
    """Fresh ``qc_bench`` database (seeded) and Redis DB 13 on the configured servers,
    once nothing else is connected to the database (``_alone_on``)."""
    url = bench_database_url(settings)
    db.ensure_database(url)
    _alone_on(url, wait_s=alone_wait_s)
    upgrade_to_head(url)
    reset_database(url)
    seed_city(
        url,
        seed=1,
        stores=stores,
        skus=skus,
        riders=riders,
        pickers_per_store=1,
        customers=customers,
        hours=None,  # a benchmark measures the same at 3 a.m.
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE store_inventory SET available_qty = 1000000, max_capacity = 1000000")
    redis_url = _redis_db(qredis.resolve_redis_url(settings), BENCH_REDIS_DB)
    client = qredis.create_redis(redis_url, max_connections=pool * 2)
    await client.flushdb()
    cfg = settings.model_copy(update={"db_pool_size": pool, "db_max_overflow": 0})
    engine = db.create_engine(url, cfg)
    try:
        yield BenchStack(
            url,
            redis_url,
            engine,
            db.session_maker(engine),
            client,
            settings.embedded_db and settings.embedded_redis,
        )
    finally:
        await client.flushdb()
        await client.aclose()
        await engine.dispose()
