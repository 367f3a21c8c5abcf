"""Login under attack: guessing is throttled and audited, hashing never stalls the server,
and an unknown account costs the same hash check as a known one."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import httpx
import pytest

from server.identity import service
from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login

PIN = DEMO_SECRETS[Role.PICKER]


async def test_guessing_a_pin_is_throttled_and_the_account_locked_out(
    city, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="server.identity.login")
    answers = [
        await client.post("/v1/auth/login", json={"login": "picker.kor.1", "secret": f"{n:04d}"})
        for n in range(2000, 2030)  # 30 guesses, none of them the PIN
    ]
    statuses = [r.status_code for r in answers]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "login_throttled"
    assert 60 <= int(refused.headers["retry-after"]) <= 15 * 60  # locked out for a while
    # the right PIN is refused too while the lockout lasts
    r = await client.post("/v1/auth/login", json={"login": "picker.kor.1", "secret": PIN})
    assert r.status_code == 429
    # other accounts are not affected
    await login(client, "picker.kor.2", PIN)
    failures = [r for r in caplog.records if r.getMessage() == "login failed"]
    assert len(failures) == 5 and all(r.__dict__["login"] == "picker.kor.1" for r in failures)


async def test_a_right_pin_clears_the_account_count(city, client: httpx.AsyncClient) -> None:
    for _ in range(3):
        for n in range(4):
            r = await client.post(
                "/v1/auth/login", json={"login": "picker.kor.1", "secret": f"99{n:02d}"}
            )
            assert r.status_code == 401
        await login(client, "picker.kor.1", PIN)


async def test_one_address_guessing_across_accounts_is_throttled(
    city, client: httpx.AsyncClient, settings: Settings
) -> None:
    settings.login_failures_per_address = "10/minute"
    statuses = [
        (
            await client.post("/v1/auth/login", json={"login": f"nobody.{n}", "secret": "0000"})
        ).status_code
        for n in range(15)
    ]
    assert statuses == [401] * 10 + [429] * 5
    r = await client.post("/v1/auth/login", json={"login": "picker.kor.2", "secret": PIN})
    assert r.status_code == 429 and "retry-after" in r.headers


async def test_unknown_and_known_accounts_both_cost_one_hash_check(
    city, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = service.verify_secret

    def counting(secret: str, stored: str) -> bool:
        checked.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(service, "verify_secret", counting)
    for name in ("picker.kor.1", "nobody.at.all"):
        r = await client.post("/v1/auth/login", json={"login": name, "secret": "0000"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    assert checked == ["0000", "0000"]


@pytest.mark.alone
async def test_a_login_flood_does_not_stall_the_server(city, live_server, settings) -> None:
    """16 clients sending bad logins back to back; /healthz keeps answering quickly."""
    settings.login_attempts_per_account = settings.login_failures_per_address = "100000/minute"
    stop = asyncio.Event()
    logins = 0

    async def attacker(n: int, http: httpx.AsyncClient) -> None:
        nonlocal logins
        while not stop.is_set():
            r = await http.post(
                "/v1/auth/login", json={"login": f"picker.kor.{n % 2 + 1}", "secret": "0000"}
            )
            assert r.status_code == 401, r.text
            logins += 1

    async with live_server.client() as http:
        await http.get("/healthz")  # warm
        attackers = [asyncio.create_task(attacker(n, http)) for n in range(16)]
        latencies = []
        async with live_server.client() as probe:
            deadline = time.monotonic() + 30
            while logins < 16:  # the flood is on: every attacker has been answered once
                assert time.monotonic() < deadline, "the flood never started"
                await asyncio.sleep(0.01)
            for _ in range(20):
                start = time.perf_counter()
                assert (await probe.get("/healthz")).status_code == 200
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*attackers)
    assert logins >= 16  # the flood was real
    assert statistics.median(latencies) < 0.05, sorted(latencies)
