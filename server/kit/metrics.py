"""Prometheus metrics and a cheap ASGI middleware that records request latency."""

from __future__ import annotations

import secrets
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.kit.config import Settings

REQUESTS = Counter("qc_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "qc_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# (method, route, status) -> its counter and histogram: ``labels`` looked up once, not per
# request (a lock and a few dicts each); bounded as the labels are
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # the route template, not the raw path, keeps label cardinality bounded
            route = getattr(scope.get("route"), "path", "unmatched")
            key = (scope["method"], route, status)
            series = _SERIES.get(key)
            if series is None:
                series = _SERIES[key] = (
                    REQUESTS.labels(key[0], route, str(status)),
                    LATENCY.labels(key[0], route),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - start)


def metrics_allowed(settings: Settings, authorization: str) -> bool:
    """/metrics is open in development; with ``QC_METRICS_TOKEN`` set it asks for that bearer
    token, and in production (``QC_PRODUCTION``) it is closed unless the token is set."""
    if settings.metrics_token is None:
        return not settings.production
    expected = f"Bearer {settings.metrics_token.get_secret_value()}"
    return secrets.compare_digest(authorization.encode(), expected.encode())
