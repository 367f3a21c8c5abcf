"""Pooled connections are tested before use only after they sat idle
(``QC_DB_PING_IDLE_S``): a connection PostgreSQL dropped meanwhile is replaced, while one
just given back is used at once (no round trip per transaction)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import db
from tests.conftest import Services, settings_for


async def _backend(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


async def test_an_idle_connection_postgresql_dropped_is_replaced(services: Services) -> None:
    engine = db.create_engine(
        services.database_url, settings_for(services, db_ping_idle_s=0, db_pool_size=1)
    )
    sessions = db.session_maker(engine)
    try:
        first = await _backend(sessions)
        _terminate(services.database_url, first)
        assert await _backend(sessions) != first  # tested, found dead, reconnected
    finally:
        await engine.dispose()


async def test_a_connection_just_given_back_is_used_untested(services: Services) -> None:
    engine = db.create_engine(
        services.database_url, settings_for(services, db_ping_idle_s=3600, db_pool_size=1)
    )
    sessions = db.session_maker(engine)
    try:
        first = await _backend(sessions)
        _terminate(services.database_url, first)
        with pytest.raises(DBAPIError):  # not tested: its first statement finds it gone
            await _backend(sessions)
        assert await _backend(sessions) != first  # and the pool replaced it
    finally:
        await engine.dispose()


async def test_a_burst_under_the_ceiling_reuses_its_connections(services: Services) -> None:
    """Every connection a burst opened is kept for the next burst: a connection opened past
    ``db_pool_size`` would be closed when given back, and each new PostgreSQL backend costs
    a fork and cold catalogue caches (under a checkout load, ~8 new backends a second with
    the old 10 + 20 overflow default, their CPU hidden from the backends one could see)."""
    settings = settings_for(services)
    burst = settings.db_pool_size + settings.db_max_overflow
    engine = db.create_engine(services.database_url, settings)
    sessions = db.session_maker(engine)
    held = asyncio.Barrier(burst)

    async def hold() -> int:
        async with sessions() as session:
            pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await held.wait()  # all of the burst's connections are out at once
            return pid

    try:
        first = set(await asyncio.gather(*(hold() for _ in range(burst))))
        assert len(first) == burst
        held = asyncio.Barrier(burst)
        assert set(await asyncio.gather(*(hold() for _ in range(burst)))) == first
    finally:
        await engine.dispose()
