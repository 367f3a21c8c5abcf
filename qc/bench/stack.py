"""A throw-away database and Redis keyspace for benchmarks, beside the user's data."""

from __future__ import annotations

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


@asynccontextmanager
async def bench_stack(
    settings: Settings,
    *,
    stores: int = 1,
    skus: int = 5000,
    pool: int = 20,
    customers: int = 1,
    riders: int = 1,
) -> AsyncIterator[BenchStack]:
    """Fresh ``qc_bench`` database (seeded) and Redis DB 13 on the configured servers."""
    base = db.resolve_database_url(settings)
    url = _with_db(base, BENCH_DATABASE)
    db.ensure_database(url)
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
