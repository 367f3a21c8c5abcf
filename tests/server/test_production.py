"""``QC_PRODUCTION``: no published API map, /metrics only with its bearer token (`qc
serve`'s trust of X-Forwarded-For: tests/qc/test_serve_servers.py)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from server.kit.config import Settings
from server.kit.metrics import metrics_allowed
from tests.conftest import Services, settings_for

METRICS_TOKEN = "scrape-me-please"


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(services, production=True, metrics_token=SecretStr(METRICS_TOKEN))


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_production_publishes_no_api_map(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404, r.text


async def test_production_metrics_ask_for_the_scrape_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 404
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert right.status_code == 200 and "qc_http_requests_total" in right.text
    assert (await client.get("/healthz")).status_code == 200  # probes stay open


def test_metrics_rule_in_each_mode(services: Services) -> None:
    assert metrics_allowed(settings_for(services), "")  # development: open
    assert not metrics_allowed(settings_for(services, production=True), "Bearer x")
    guarded = settings_for(services, metrics_token=SecretStr("t"))
    assert metrics_allowed(guarded, "Bearer t") and not metrics_allowed(guarded, "Bearer u")


@pytest.fixture
def small_bodies(services: Services) -> Settings:
    return settings_for(services, max_body_bytes=4096)


async def test_oversized_bodies_are_refused_before_they_are_read(
    clean: Services, small_bodies: Settings
) -> None:
    """Over a real socket: a declared Content-Length over the ceiling and a chunked body
    that grows past it are both 413 problems; a body under it is parsed as usual."""
    from server.app import create_app
    from tests.helpers import ThreadedServer

    server = ThreadedServer(lambda: create_app(small_bodies))
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            big = b'{"login": "' + b"a" * 10_000 + b'", "secret": "x"}'
            declared = await http.post(
                "/v1/auth/login", content=big, headers={"content-type": "application/json"}
            )
            assert declared.status_code == 413, declared.text
            assert declared.json()["code"] == "body_too_large"

            async def chunks():  # no Content-Length: counted as it arrives
                yield b'{"login": "'
                for _ in range(10):
                    yield b"a" * 1000
                yield b'", "secret": "x"}'

            chunked = await http.post(
                "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
            )
            assert chunked.status_code == 413, chunked.text

            small = await http.post("/v1/auth/login", json={"login": "nobody", "secret": "x"})
            assert small.status_code == 401, small.text
    finally:
        server.stop()
