"""The FastAPI application: ``create_app(settings)``; the lifespan owns every connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.catalog.routes import router as catalog_router
from server.catalog.snapshot import Catalog
from server.delivery import tracking
from server.delivery.routes import router as delivery_router
from server.delivery.routes import ws_router as rider_ws_router
from server.flash import bulkheads
from server.flash.hub import FlashHub
from server.flash.routes import queue_router as flash_queue_router
from server.flash.routes import router as flash_router
from server.flash.routes import ws_router as flash_ws_router
from server.identity.routes import router as identity_router
from server.inventory.routes import router as inventory_router
from server.inventory.worker import load_missing_stores
from server.kit import db, ratelimit, scripts
from server.kit import redis as qredis
from server.kit.background import stop_all
from server.kit.bodylimit import BodyLimitMiddleware
from server.kit.clock import Clock
from server.kit.config import Settings, get_settings
from server.kit.embedded import redact_url
from server.kit.errors import PROBLEM_JSON, DomainError, problem_body
from server.kit.fanout import Fanout
from server.kit.headers import SecurityHeadersMiddleware
from server.kit.logs import configure_logging
from server.kit.looplag import measure_lag
from server.kit.loops import background_loops
from server.kit.metrics import MetricsMiddleware, metrics_allowed
from server.kit.migrate import head_revision
from server.kit.resources import Resources, install, resources_of
from server.kit.sockets import SessionEnds, SocketGuardMiddleware
from server.ops.feed import FeedCache
from server.ops.routes import router as ops_router
from server.ops.routes import ws_router as ops_ws_router
from server.orders.routes import router as orders_router
from server.orders.tracking import router as tracking_router
from server.payments.routes import router as payments_router
from server.payments.service import payment_gateway
from server.picking.routes import customer_router as substitution_router
from server.picking.routes import router as picking_router
from server.picking.routes import ws_router as picker_ws_router
from server.stores.routes import router as stores_router
from shared.schemas.common import Health, ServiceCheck

log = logging.getLogger("server")


def _problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, detail, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(
            exc.problem(),
            status_code=exc.status,
            media_type=PROBLEM_JSON,
            headers=exc.headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())),
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors) or "request"
        return _problem(422, "validation_failed", f"invalid input: {fields}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return _problem(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # every pooled connection stayed busy for db_pool_timeout_s: overload, not a bug
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        return _problem(
            503,
            "database_busy",
            "the server is at capacity; retry shortly",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_unreachable(request: Request, exc: Exception) -> JSONResponse:
        # Valkey too busy or away for a moment: the request changed nothing it could not undo
        log.warning("redis unreachable on %s %s: %s", request.method, request.url.path, exc)
        return _problem(
            503,
            "redis_unavailable",
            "a backing service is busy; retry shortly",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # text PostgreSQL cannot store (a NUL byte, an unpaired surrogate) is bad input; the
        # transaction was rolled back and its Redis changes compensated on the way here
        if isinstance(exc.orig, psycopg.errors.DataError):
            return _problem(
                422,
                "invalid_text",
                "the input holds characters that cannot be stored (e.g. a NUL byte)",
            )
        log.exception("database error on %s %s", request.method, request.url.path)
        return _problem(500, "internal_error", "an unexpected error occurred; it was logged")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem(500, "internal_error", "an unexpected error occurred; it was logged")


@asynccontextmanager
async def open_resources(settings: Settings, clock: Clock) -> AsyncIterator[Resources]:
    """Every connection and per-process singleton the app runs on; closed on the way out."""
    db_url = await asyncio.to_thread(db.resolve_database_url, settings)
    redis_url = await asyncio.to_thread(qredis.resolve_redis_url, settings)
    engine = db.create_engine(db_url, settings)
    redis = qredis.create_redis(redis_url)
    redis_pubsub = qredis.create_pubsub_client(redis_url)
    fanout = Fanout(redis_pubsub)
    session_ends = SessionEnds(fanout)
    try:
        payments = payment_gateway(settings, redis)
        resources = Resources(
            settings=settings,
            clock=clock,
            database_url=db_url,
            redis_url=redis_url,
            head_revision=head_revision(db_url),
            engine=engine,
            sessions=db.session_maker(engine),
            redis=redis,
            fanout=fanout,
            session_ends=session_ends,
            payments=payments,
            flash_payments=bulkheads.flash_gateway(payments, slots=settings.flash_payment_bulkhead),
            rate_limiter=ratelimit.rate_limiter(redis, redis_url),
            flash_queue_bulkhead=bulkheads.Bulkhead(
                "queue", settings.flash_bulkhead_queue, settings.flash_bulkhead_wait_s
            ),
            flash_checkout_bulkhead=bulkheads.Bulkhead(
                "checkout", settings.flash_bulkhead_checkout, settings.flash_bulkhead_wait_s
            ),
            flash_hub=FlashHub(redis=redis, fanout=fanout, settings=settings, clock=clock),
            ops_feed=FeedCache(),
            catalog=Catalog(engine, redis),
        )
        await scripts.load_all(redis)
        # trip changes made here drop the riders' tracking contexts in this Redis
        tracking.attach(engine.sync_engine, redis)
        await ratelimit.warm(resources.rate_limiter)  # a cluster client meets its nodes now
        # Redis must hold every store's stock before the first reservation is accepted
        await load_missing_stores(engine, redis)
        yield resources
    finally:
        await session_ends.aclose()
        await fanout.aclose()
        await redis_pubsub.aclose()
        await redis.aclose()
        await engine.dispose()


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, waiting_room: bool = False
) -> FastAPI:
    """The API; ``waiting_room``: only a flash sale's line (join, where am I, leave) and its
    socket, as the waiting room's own server runs it (``qc.serving``)."""
    settings = settings or get_settings()
    clock = clock or Clock(speed=settings.clock_speed, anchor=settings.clock_anchor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(json_lines=settings.log_json, level=settings.log_level)
        async with open_resources(settings, clock) as resources:
            install(app, resources)
            loops = background_loops(resources) if settings.background_loops else []
            for loop in loops:
                loop.start()
            # where the servers are, not whether this process started them: under
            # qc serve the parent started the embedded ones and hands their URLs down
            log.info(
                "server ready",
                extra={
                    "database": redact_url(resources.database_url),
                    "redis": redact_url(resources.redis_url),
                },
            )
            lag = asyncio.create_task(measure_lag(), name="event-loop-lag")
            try:
                yield
            finally:
                lag.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lag
                await stop_all(loops)

    app = FastAPI(
        title="qc: quick-commerce operations API",
        version="0.1.0",
        summary="Dark-store selection, catalogue, carts, orders, picking, delivery and ops.",
        lifespan=lifespan,
        # production publishes no API map (clients ship with the one they were built on)
        docs_url=None if settings.production else "/docs",
        redoc_url=None if settings.production else "/redoc",
        openapi_url=None if settings.production else "/openapi.json",
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(SocketGuardMiddleware)
    _install_error_handlers(app)
    if waiting_room:  # the queue's own server: a crowd's joins wait behind nothing else
        app.include_router(flash_queue_router)
        app.include_router(flash_ws_router)
    elif settings.serve_api:  # off: a worker, only /healthz and /metrics besides its loops
        # A request is matched against the routes in this order, one by one (a few µs
        # each): the city's hottest paths first (catalogue reads, rider fixes, carts and
        # checkout, the flash crowd), the staff's and the sockets' after. No two routers
        # share a path, so the order changes nothing but the cost.
        app.include_router(catalog_router)
        app.include_router(delivery_router)
        app.include_router(orders_router)
        app.include_router(flash_queue_router)
        app.include_router(flash_router)
        app.include_router(stores_router)
        app.include_router(identity_router)
        app.include_router(tracking_router)
        app.include_router(picking_router)
        app.include_router(substitution_router)
        app.include_router(inventory_router)
        app.include_router(payments_router)
        app.include_router(rider_ws_router)
        app.include_router(picker_ws_router)
        app.include_router(flash_ws_router)
        app.include_router(ops_router)
        app.include_router(ops_ws_router)

    @app.get(
        "/healthz",
        summary="PostgreSQL and Redis reachable, schema at head",
        tags=["service"],
        responses={503: {"model": Health}},
    )
    async def healthz() -> JSONResponse:
        health = await check_health(app)
        return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)

    @app.get("/metrics", summary="Prometheus metrics", tags=["service"], response_class=Response)
    async def metrics(request: Request) -> Response:
        if not metrics_allowed(settings, request.headers.get("authorization", "")):
            # not 401: an unauthorised caller is not told that the endpoint exists
            return JSONResponse(
                problem_body(404, "not_found", "no such route"),
                status_code=404,
                media_type=PROBLEM_JSON,
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def check_health(app: FastAPI) -> Health:
    resources = resources_of(app)
    pg = ServiceCheck(ok=False)
    migration = ServiceCheck(ok=False)
    rd = ServiceCheck(ok=False)
    try:
        current = await db.schema_revision(resources.engine)
        pg = ServiceCheck(ok=True)
        head = resources.head_revision
        migration = ServiceCheck(ok=current == head, detail=f"at {current}, head {head}")
    except Exception as exc:
        pg = ServiceCheck(ok=pg.ok, detail=type(exc).__name__)
    try:
        rd = ServiceCheck(ok=bool(await resources.redis.ping()))
    except Exception as exc:
        rd = ServiceCheck(ok=False, detail=type(exc).__name__)
    status = "ok" if pg.ok and rd.ok and migration.ok else "degraded"
    return Health(status=status, postgres=pg, redis=rd, migration=migration)
