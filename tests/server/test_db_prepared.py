"""Prepared statements stay prepared: psycopg prepares a statement on a connection after
five runs with the same parameter types, so an int must not change type with its value,
and a health probe must not make the connection forget them (psycopg drops them all on a
rollback)."""

from __future__ import annotations

import contextlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.kit import db
from tests.conftest import Services, settings_for

_MARKED = text("SELECT CAST(:n AS bigint) + 1 AS qc_prepared_probe")
_PREPARED = text(
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%qc_prepared_probe%'"
    " AND statement NOT LIKE '%pg_prepared_statements%'"
)


async def _prepared(conn: AsyncConnection) -> int:
    return int((await conn.execute(_PREPARED)).scalar_one())


async def test_a_statement_is_prepared_whatever_its_int_values(services: Services) -> None:
    engine = db.create_engine(services.database_url, settings_for(services, db_pool_size=1))
    try:
        async with engine.connect() as conn:
            # a quantity, then a price in paise: smallint and integer by psycopg's default
            for n in (2, 45_000, 3, 52_000, 1, 61_000):
                assert (await conn.execute(_MARKED, {"n": n})).scalar_one() == n + 1
            assert await _prepared(conn) == 1
            await conn.commit()
    finally:
        await engine.dispose()


async def test_a_health_probe_leaves_the_prepared_statements_prepared(
    services: Services,
) -> None:
    engine = db.create_engine(services.database_url, settings_for(services, db_pool_size=1))
    try:
        async with engine.connect() as conn:
            for n in range(6):
                await conn.execute(_MARKED, {"n": n})
            await conn.commit()
        assert await db.schema_revision(engine)  # on the pool's one connection
        async with engine.connect() as conn:
            assert await _prepared(conn) == 1
            await conn.commit()
    finally:
        await engine.dispose()


async def test_a_rollback_leaves_the_prepared_statements_prepared(services: Services) -> None:
    engine = db.create_engine(services.database_url, settings_for(services, db_pool_size=1))
    try:
        async with engine.connect() as conn:
            for n in range(6):
                await conn.execute(_MARKED, {"n": n})
            await conn.rollback()  # a read ended, as a refused request's transaction ends
            assert await _prepared(conn) == 1
            # and a prepared statement still runs after it (psycopg still knows its name)
            assert (await conn.execute(_MARKED, {"n": 41})).scalar_one() == 42
            await conn.commit()
    finally:
        await engine.dispose()


_BACKEND = text("SELECT pg_backend_pid()")


async def test_the_pool_lends_the_connection_given_back_last(services: Services) -> None:
    """Under a light load one connection does the work, its statements prepared, rather
    than every pooled connection in turn (each parsing and planning them anew)."""
    engine = db.create_engine(services.database_url, settings_for(services, db_pool_size=4))
    try:
        async with contextlib.AsyncExitStack() as opened:  # four connections in the pool
            conns = [await opened.enter_async_context(engine.connect()) for _ in range(4)]
            pids = {(await conn.execute(_BACKEND)).scalar_one() for conn in conns}
        assert len(pids) == 4
        used = set()
        for _ in range(8):  # one request after another
            async with engine.connect() as conn:
                used.add((await conn.execute(_BACKEND)).scalar_one())
                await conn.commit()
        assert len(used) == 1
    finally:
        await engine.dispose()
