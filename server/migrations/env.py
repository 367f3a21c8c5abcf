"""Alembic environment: runs migrations on the URL handed over by ``server.kit.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import server.models  # noqa: F401  (registers every table)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("run migrations through server.kit.migrate, which sets the URL")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            # one migrator at a time, even when several processes start together
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
            context.run_migrations()


run_migrations_online()
