"""Service basics: health, metrics, problem-details errors, OpenAPI."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
from prometheus_client import REGISTRY

from server.kit.errors import PROBLEM_JSON
from server.kit.looplag import LAG_METRIC
from server.kit.resources import install, resources_of
from tests.helpers import wait_until


async def test_healthz_is_green_with_schema_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["postgres"]["ok"] and body["redis"]["ok"] and body["migration"]["ok"]


async def test_healthz_degrades_when_redis_is_unreachable(app, client: httpx.AsyncClient) -> None:
    import redis.asyncio as aioredis

    healthy = resources_of(app)
    unreachable = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    install(app, replace(healthy, redis=unreachable))
    try:
        response = await client.get("/healthz")
    finally:
        await unreachable.aclose()
        install(app, healthy)
    assert response.status_code == 503
    assert response.json()["redis"]["ok"] is False


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'qc_http_requests_total{method="GET",route="/healthz",status="200"}' in text


def _late_turns() -> float:
    """The lag observations of this process so far that came 25 ms or more late."""
    total = REGISTRY.get_sample_value(LAG_METRIC + "_count") or 0.0
    prompt = REGISTRY.get_sample_value(LAG_METRIC + "_bucket", {"le": "0.025"})
    return total - (prompt or 0.0)


async def test_a_turn_that_blocks_the_loop_shows_in_its_lag_metric(
    client: httpx.AsyncClient,
) -> None:
    """The app's lifespan measures its event loop's lag: a callback that holds the loop
    100 ms, longer than the timer's interval, makes the wake-up due within it come 50 ms
    late or more, and /metrics says so."""
    count = LAG_METRIC + "_count"
    await wait_until(lambda: (REGISTRY.get_sample_value(count) or 0) > 0, what="a lag sample")
    before = _late_turns()
    time.sleep(0.1)  # the long turn the metric is there to see
    await wait_until(lambda: _late_turns() > before, what="the long turn's lag")
    text = (await client.get("/metrics")).text
    assert LAG_METRIC + "_bucket" in text


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["code"] == "not_found" and body["status"] == 404 and body["detail"]


async def test_validation_errors_name_each_bad_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/login", json={"login": "", "secret": 5})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.login", "body.secret"}


async def test_malformed_json_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_openapi_documents_every_route_with_a_summary(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    missing = [
        f"{m.upper()} {p}"
        for p, ops in spec["paths"].items()
        for m, op in ops.items()
        if not op.get("summary")
    ]
    assert missing == []
    assert "401" in spec["paths"]["/v1/me"]["get"]["responses"]
