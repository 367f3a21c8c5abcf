"""Pooled connections are tested before use only after they sat idle
(``QC_DB_PING_IDLE_S``): a connection PostgreSQL dropped meanwhile is replaced, while one
just given back is used at once (no round trip per transaction)."""

from __future__ import annotations

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
