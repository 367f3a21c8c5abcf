"""The Redis-backed circuit breaker, on a real Redis, with explicit server-clock times."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from server.kit.errors import ServiceUnavailable
from server.payments.breaker import BreakerConfig, CircuitBreaker, CircuitOpen, Permit

T0 = 1_750_000_000.0
CONFIG = BreakerConfig(window_calls=20, window_s=10, min_calls=10, open_s=30, trial_timeout_s=5)


@pytest.fixture
async def replica_redis(services) -> AsyncIterator[aioredis.Redis]:
    """A second connection pool, as another API replica would have."""
    client = aioredis.Redis.from_url(services.redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def outcome(breaker: CircuitBreaker, success: bool, now: float) -> None:
    permit = await breaker.before_call(now)
    await breaker.record(success, now, permit=permit)


async def trip(breaker: CircuitBreaker, now: float) -> None:
    for i in range(CONFIG.min_calls):
        await outcome(breaker, False, now + i * 0.01)
    assert (await breaker.snapshot(now + 0.1)).state == "open"


async def test_opens_only_at_min_calls(redis):
    breaker = CircuitBreaker(redis, "p1", CONFIG)
    for i in range(9):
        await outcome(breaker, False, T0 + i)
    snap = await breaker.snapshot(T0 + 9)
    assert (snap.state, snap.calls, snap.failures) == ("closed", 9, 9)
    await breaker.before_call(T0 + 9)  # still lets calls through

    await outcome(breaker, False, T0 + 9)
    assert (await breaker.snapshot(T0 + 9)).state == "open"


async def test_opens_at_half_failures_over_the_window(redis):
    breaker = CircuitBreaker(redis, "p2", CONFIG)
    for _ in range(10):
        await outcome(breaker, True, T0)
    for _ in range(9):
        await outcome(breaker, False, T0 + 1)
    snap = await breaker.snapshot(T0 + 1)
    assert (snap.state, snap.calls, snap.failures) == ("closed", 19, 9)  # 47%

    await outcome(breaker, False, T0 + 1)  # 10 of 20
    assert (await breaker.snapshot(T0 + 1)).state == "open"


async def test_window_keeps_the_last_n_calls(redis):
    breaker = CircuitBreaker(redis, "p3", CONFIG)
    for i in range(19):
        await outcome(breaker, i < 10, T0)  # 10 successes, then 9 failures
    for _ in range(20):
        await outcome(breaker, True, T0 + 1)  # pushes the failures out of the 20-call window
    for _ in range(9):
        await outcome(breaker, False, T0 + 2)
    snap = await breaker.snapshot(T0 + 2)
    assert (snap.state, snap.calls, snap.failures) == ("closed", 20, 9)
    # 10 of the last 20 (not 19 of 49) failed
    await outcome(breaker, False, T0 + 2)
    assert (await breaker.snapshot(T0 + 2)).state == "open"


async def test_window_forgets_old_calls(redis):
    breaker = CircuitBreaker(redis, "p4", CONFIG)
    for _ in range(9):
        await outcome(breaker, False, T0)
    await outcome(breaker, False, T0 + 10.5)  # the nine are older than 10 s now
    snap = await breaker.snapshot(T0 + 10.5)
    assert (snap.state, snap.calls, snap.failures) == ("closed", 1, 1)


async def test_open_answers_fast_with_retry_after(redis):
    breaker = CircuitBreaker(redis, "p5", CONFIG)
    await trip(breaker, T0)
    opened_at = T0 + 0.09  # the tenth failure

    with pytest.raises(CircuitOpen) as caught:
        await breaker.before_call(opened_at + 5)
    err = caught.value
    assert isinstance(err, ServiceUnavailable)
    assert (err.status, err.code) == (503, "payment_unavailable")
    assert err.headers == {"Retry-After": "25"}
    assert err.problem()["retry_after_s"] == 25

    with pytest.raises(CircuitOpen) as caught:
        await breaker.before_call(opened_at + 29.9)
    assert caught.value.headers == {"Retry-After": "1"}


async def test_half_open_lets_exactly_one_trial_through(redis, replica_redis):
    a = CircuitBreaker(redis, "p6", CONFIG)
    b = CircuitBreaker(replica_redis, "p6", CONFIG)
    await trip(a, T0)
    later = T0 + 31

    async def attempt(breaker: CircuitBreaker) -> Permit | CircuitOpen:
        try:
            return await breaker.before_call(later)
        except CircuitOpen as exc:
            return exc

    answers = await asyncio.gather(*(attempt(a if i % 2 else b) for i in range(20)))
    trials = [x for x in answers if isinstance(x, Permit)]
    assert len(trials) == 1 and trials[0].trial
    assert all(
        isinstance(x, CircuitOpen) and x.retry_after_s == 1 for x in answers if x not in trials
    )
    assert (await a.snapshot(later)).state == "half_open"


async def test_trial_success_closes(redis):
    breaker = CircuitBreaker(redis, "p7", CONFIG)
    stale = await breaker.before_call(T0)  # admitted before the breaker opened
    await trip(breaker, T0)
    trial = await breaker.before_call(T0 + 31)
    # a non-trial outcome does not decide a half-open breaker
    await breaker.record(True, T0 + 31, permit=stale)
    assert (await breaker.snapshot(T0 + 31)).state == "half_open"

    await breaker.record(True, T0 + 31, permit=trial)
    assert (await breaker.snapshot(T0 + 31)).state == "closed"
    assert not (await breaker.before_call(T0 + 32)).trial
    # the late outcome of a call from before the outage is not counted in the new window
    await breaker.record(False, T0 + 32, permit=stale)
    assert (await breaker.snapshot(T0 + 32)).calls == 0


async def test_trial_failure_reopens(redis):
    breaker = CircuitBreaker(redis, "p8", CONFIG)
    await trip(breaker, T0)
    trial = await breaker.before_call(T0 + 40)
    await breaker.record(False, T0 + 40, permit=trial)

    snap = await breaker.snapshot(T0 + 41)
    assert (snap.state, snap.open_until) == ("open", T0 + 70)
    with pytest.raises(CircuitOpen) as caught:
        await breaker.before_call(T0 + 41)
    assert caught.value.retry_after_s == 29
    assert (await breaker.before_call(T0 + 70)).trial


async def test_abandoned_trial_lapses(redis):
    breaker = CircuitBreaker(redis, "p9", CONFIG)
    await trip(breaker, T0)
    lost = await breaker.before_call(T0 + 31)  # this caller's replica dies mid-call
    with pytest.raises(CircuitOpen):
        await breaker.before_call(T0 + 35.9)

    second = await breaker.before_call(T0 + 36)  # trial_timeout_s later
    assert second.trial and second.trial_token != lost.trial_token
    await breaker.record(False, T0 + 36.5, permit=lost)  # the lost call's late answer
    assert (await breaker.snapshot(T0 + 36.5)).state == "half_open"
    await breaker.record(True, T0 + 37, permit=second)
    assert (await breaker.snapshot(T0 + 37)).state == "closed"


async def test_replicas_share_state(redis, replica_redis):
    a = CircuitBreaker(redis, "p10", CONFIG)
    b = CircuitBreaker(replica_redis, "p10", CONFIG)
    for i in range(10):
        await outcome(a if i % 2 else b, False, T0 + i * 0.1)
    with pytest.raises(CircuitOpen):
        await a.before_call(T0 + 2)
    with pytest.raises(CircuitOpen):
        await b.before_call(T0 + 2)
    # breakers of other names are independent
    assert not (await CircuitBreaker(redis, "other", CONFIG).before_call(T0 + 2)).trial


def test_config_is_checked():
    with pytest.raises(ValueError):
        BreakerConfig(window_calls=5, min_calls=10)
    with pytest.raises(ValueError):
        BreakerConfig(failure_ratio=0)
