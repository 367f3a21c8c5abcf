"""The real backing services for a simulated day: PostgreSQL and Redis (embedded, in a
fresh home of their own by default), migrated and seeded with the demo city.

Hidden wall-clock and ordering effects are switched off here: autovacuum (which runs on
the wall clock and changes where PostgreSQL keeps rows, hence the order of unsorted
reads), and the in-process caches' timers (pointed at the simulated clock).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis as sync_redis
from pydantic import SecretStr

from qc.des.config import DesConfig
from server.kit.config import Settings
from server.kit.migrate import upgrade_to_head
from server.seed.generate import reset_database, seed_city

SECRET = "qc-simulate-" + "s" * 40


@dataclass(frozen=True)
class Services:
    home: Path
    database_url: str
    redis_url: str


@contextmanager
def embedded_services() -> Iterator[Services]:
    """A private embedded PostgreSQL and Valkey in a temporary home, removed afterwards."""
    from server.kit.db import EmbeddedPostgres, ensure_database
    from server.kit.redis import EmbeddedValkey

    home = Path(tempfile.mkdtemp(prefix="qc-simulate-"))
    postgres = EmbeddedPostgres(home.resolve())
    valkey = EmbeddedValkey(home.resolve())
    try:
        parts = urlsplit(postgres.acquire())
        _throwaway(urlunsplit(parts))
        db_url = urlunsplit(parts._replace(path="/qc_simulate"))
        ensure_database(db_url)
        redis_url = valkey.acquire()
        _throwaway_redis(redis_url)
        yield Services(home=home, database_url=db_url, redis_url=redis_url)
    finally:
        valkey.release()
        postgres.release()
        shutil.rmtree(home, ignore_errors=True)


def _throwaway(server_url: str) -> None:
    """The private server's data dies with the run: no commit waits for the disk (most of
    a simulated order's wall time was commits waiting on fsync). Figures are unchanged:
    what is committed and in which order does not depend on when it reaches the disk."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {name} = off")
        # ANALYZE samples rows at random beyond 300 x this target; at the most it reads
        # every row of any table of a simulated day, so the same seed plans the same
        conn.execute("ALTER SYSTEM SET default_statistics_target = 10000")
        conn.execute("SELECT pg_reload_conf()")


def _throwaway_redis(url: str) -> None:
    """Nor does Valkey append every write to its log: the private store dies with the run."""
    client = sync_redis.Redis.from_url(url)
    client.config_set("appendonly", "no")
    client.close()


def settings_for(services: Services, config: DesConfig) -> Settings:
    levers: dict[str, Any] = {
        **config.policies.settings(),
        "serviceability_promise_s": int(config.promise_min * 60),
    }
    return Settings(
        home=services.home,
        database_url=services.database_url,
        redis_url=services.redis_url,
        secret_key=SecretStr(SECRET),
        log_json=False,
        log_level="WARNING",
        background_loops=False,  # the simulation runs the sweeps itself, on its clock
        **levers,
    )


def prepare(services: Services, config: DesConfig) -> None:
    """Empty database and Redis, the schema at head, the city seeded, autovacuum off."""
    upgrade_to_head(services.database_url)
    reset_database(services.database_url)
    client = sync_redis.Redis.from_url(services.redis_url)
    client.flushdb()
    client.close()
    pickers, riders = config.max_staff()
    seed_city(
        services.database_url,
        seed=42,
        stores=config.stores,
        skus=config.skus,
        riders=riders * config.stores,
        pickers_per_store=pickers,
        customers=config.customers,
    )
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        if config.only:  # the rest of the city is another process's
            conn.execute(
                "UPDATE dark_stores SET is_operational = false WHERE NOT store_id = ANY(%s)",
                (list(config.only),),
            )
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        for table in tables:
            conn.execute(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)')
