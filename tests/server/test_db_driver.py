"""``db.execute`` keeps the transaction's psycopg connection instead of asking SQLAlchemy
for it per statement, yet a savepoint still gets its SAVEPOINT (a statement in it rolls
back with it), a new transaction its BEGIN, and a new cart's unit of work (``autocommit``)
none, while the next unit on that connection is a transaction again."""

from __future__ import annotations

from sqlalchemy import text

from server.kit import db
from tests.conftest import Services, settings_for

_CREATE = text("CREATE TEMP TABLE IF NOT EXISTS t (n int)")
_INSERT = text("INSERT INTO t VALUES (:n)")
_ALL = text("SELECT n FROM t ORDER BY n")


async def test_savepoints_transactions_and_autocommit_on_the_kept_connection(
    services: Services,
) -> None:
    engine = db.create_engine(services.database_url, settings_for(services, db_pool_size=1))
    sessions = db.session_maker(engine)
    try:
        async with db.transaction(sessions) as session:
            await db.execute(session, _CREATE, {})
            await db.execute(session, _INSERT, {"n": 1})
            try:
                async with session.begin_nested():
                    await db.execute(session, _INSERT, {"n": 2})
                    raise RuntimeError("undo the savepoint")
            except RuntimeError:
                pass
            await db.execute(session, _INSERT, {"n": 3})
            rows = await (await db.execute(session, _ALL, {})).fetchall()
            assert [r[0] for r in rows] == [1, 3]
        async with db.transaction(sessions) as session:
            await db.autocommit(session)
            await db.execute(session, _INSERT, {"n": 4})
            raw = await db.driver(session)
            assert raw.autocommit and raw.info.transaction_status.name == "IDLE"
        async with db.transaction(sessions) as session:
            await db.execute(session, _INSERT, {"n": 5})
            raw = await db.driver(session)
            assert not raw.autocommit and raw.info.transaction_status.name == "INTRANS"
            rows = await (await db.execute(session, _ALL, {})).fetchall()
            assert [r[0] for r in rows] == [1, 3, 4, 5]
    finally:
        await engine.dispose()
