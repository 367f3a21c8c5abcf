"""An Idempotency-Key's claim and answer ride on the checkout's own transactions: a
refusal (its claim rolled back with the work) is still the key's answer, and two requests
with one key at once never both run."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, stocked_skus

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", "lat": 12.9352, "lng": 77.6245}}
FAR = {"address": {"line1": "Connaught Place", "lat": 28.63, "lng": 77.22}}


@pytest.fixture
async def customer(city, client) -> dict[str, str]:
    return await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])


async def _cart(city, client, headers) -> str:
    [sku] = stocked_skus(city.database_url, STORE, 1, at_least=5)
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=headers
    )
    assert r.status_code == 200, r.text
    return cart["cart_id"]


def _keys(url: str) -> list[tuple[int | None, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT status_code, body->>'code' FROM idempotency_keys").fetchall()


async def test_a_refusal_is_the_keys_answer_though_its_claim_rolled_back(
    city, client, customer
) -> None:
    cart_id = await _cart(city, client, customer)
    headers = {**customer, "Idempotency-Key": "far-1"}
    first = await client.post(f"/v1/carts/{cart_id}/checkout", json=FAR, headers=headers)
    assert first.status_code == 409 and first.json()["code"] == "not_serviceable", first.text
    assert first.headers["idempotent-replayed"] == "false"
    assert _keys(city.database_url) == [(409, "not_serviceable")]
    again = await client.post(f"/v1/carts/{cart_id}/checkout", json=FAR, headers=headers)
    assert again.status_code == 409 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_one_key_twice_at_once_runs_one_checkout(city, client, customer) -> None:
    cart_id = await _cart(city, client, customer)
    headers = {**customer, "Idempotency-Key": uuid.uuid4().hex}
    answers = await asyncio.gather(
        *(
            client.post(f"/v1/carts/{cart_id}/checkout", json=ADDRESS, headers=headers)
            for _ in range(2)
        )
    )
    codes = sorted(a.status_code for a in answers)
    # the second waited for the first's claim: in progress, or (once answered) its replay
    assert codes in ([201, 201], [201, 409]), [a.text for a in answers]
    if codes == [201, 201]:
        assert answers[0].json()["order_id"] == answers[1].json()["order_id"]
    else:
        refused = next(a for a in answers if a.status_code == 409)
        assert refused.json()["code"] == "request_in_progress"
    with psycopg.connect(city.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchall() == [(1,)]
    assert _keys(city.database_url) == [(201, None)]


async def _run_once_claiming(
    sessions, claim_args: dict, seen: list[uuid.UUID], failure: Exception | None
) -> tuple[int, str]:
    """``run_once`` of a work that takes its claim in a committed transaction and then
    raises ``failure`` (a DomainError) or answers 200; the attempt ids the work ran as go
    to ``seen``. Returns the answer's status and code."""
    from server.idempotency.service import Claim, run_once
    from server.kit.db import transaction
    from server.kit.errors import DomainError

    claim = Claim(**claim_args)

    async def work(attempt_id: uuid.UUID, claim: Claim) -> str:
        async with transaction(sessions) as session:
            await claim.take(session, attempt_id=attempt_id)
        seen.append(attempt_id)
        if failure is not None:
            raise failure
        return "done"

    try:
        answer = await run_once(sessions, claim, work)
    except DomainError as exc:
        return exc.status, exc.code
    return answer.status_code, ""


def _claim_args(app, database_url: str, key: str) -> dict:
    from server.kit.resources import resources_of

    with psycopg.connect(database_url) as conn:
        [(user_id,)] = conn.execute(
            "SELECT id FROM users WHERE role = 'customer' ORDER BY id LIMIT 1"
        ).fetchall()
    return {
        "user_id": user_id,
        "key": key,
        "fingerprint": "f" * 64,
        "now": resources_of(app).clock.now(),
        "render": lambda result: (200, {"result": result}),
    }


async def test_a_5xx_after_the_claim_committed_keeps_it_for_the_retry(city, app) -> None:
    """Work that stands (its first transaction committed) and then fails with a 5xx is
    not forgotten: the key is marked abandoned and the retry runs as the same attempt
    (a checkout resumes its placed order instead of placing and charging a second)."""
    from server.kit.errors import ServiceUnavailable
    from server.kit.resources import resources_of

    sessions = resources_of(app).sessions
    args = _claim_args(app, city.database_url, "reload-1")
    seen: list[uuid.UUID] = []
    reloading = ServiceUnavailable("the store is being reloaded")
    assert (await _run_once_claiming(sessions, args, seen, reloading))[0] == 503
    assert _keys(city.database_url) == [(None, None)]  # kept, unanswered (body: abandoned)
    assert (await _run_once_claiming(sessions, args, seen, None))[0] == 200
    assert len(seen) == 2 and seen[0] == seen[1]
    assert _keys(city.database_url) == [(200, None)]


async def test_a_refusal_after_the_claim_committed_is_not_the_keys_answer(city, app) -> None:
    """A 4xx raised once the work's first transaction committed (a checkout's order is
    placed) is not stored as the key's answer, which would leave that order to nobody:
    the request is answered 409 request_in_progress and its retry resumes the work as
    the same attempt."""
    from server.kit.errors import Conflict
    from server.kit.resources import resources_of

    sessions = resources_of(app).sessions
    args = _claim_args(app, city.database_url, "refused-after-claim")
    seen: list[uuid.UUID] = []
    refused = Conflict("the hold changed meanwhile", code="hold_busy")
    assert await _run_once_claiming(sessions, args, seen, refused) == (409, "request_in_progress")
    assert _keys(city.database_url) == [(None, None)]  # kept, unanswered (body: abandoned)
    assert (await _run_once_claiming(sessions, args, seen, None))[0] == 200
    assert len(seen) == 2 and seen[0] == seen[1]
    assert _keys(city.database_url) == [(200, None)]
