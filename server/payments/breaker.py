"""A circuit breaker for the payment provider whose state lives in Redis.

Every API replica reads and changes the same state through one Lua script
(``lua/breaker.lua``), so a provider outage seen by some replicas stops traffic from all
of them. States:

* closed: calls pass; the outcomes of the last ``window_calls`` calls within
  ``window_s`` are kept; at ``min_calls`` or more with ``failure_ratio`` of them failed,
  the breaker opens.
* open: calls are refused with ``CircuitOpen`` (503 ``payment_unavailable`` with
  ``Retry-After``) until ``open_s`` has passed.
* half-open: one trial call is let through (a SET NX token); its success closes the
  breaker, its failure opens it again. A trial whose caller vanished (a replica died
  mid-call) lapses after ``trial_timeout_s`` and the next caller gets the trial.

Times are server-clock seconds passed in by the caller (``now``); the breaker never reads
a clock and no key TTL decides a state.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, cast

import redis.asyncio as aioredis

from server.kit import keys, scripts
from server.kit.errors import ServiceUnavailable

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


class PaymentUnavailable(ServiceUnavailable):
    """Payments are refused right now; the client may retry after ``retry_after_s``."""

    code, title = "payment_unavailable", "Payment unavailable"

    def __init__(self, detail: str, *, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(detail, retry_after_s=seconds)
        self.retry_after_s = seconds
        self.headers = {"Retry-After": str(seconds)}


class CircuitOpen(PaymentUnavailable):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            "the payment provider is failing; payments are paused", retry_after_s=retry_after_s
        )


@dataclass(frozen=True)
class BreakerConfig:
    window_calls: int = 20
    window_s: float = 10.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_s: float = 30.0
    # at least the gateway's provider timeout, so a live trial is never presumed dead
    trial_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_calls <= self.window_calls:
            raise ValueError("need 1 <= min_calls <= window_calls")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if min(self.window_s, self.open_s, self.trial_timeout_s) <= 0:
            raise ValueError("durations must be positive")


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; hand it back to ``record`` with the call's outcome."""

    generation: int
    trial_token: str | None = None

    @property
    def trial(self) -> bool:
        return self.trial_token is not None


@dataclass(frozen=True)
class BreakerSnapshot:
    state: BreakerState
    open_until: float | None
    calls: int
    failures: int


# how long a permit ``open_until`` found stays good for its task's call (the checkout's
# first transaction lies between them)
ADMITTED_FOR_S = 1.0


@dataclass(frozen=True)
class _Admitted:
    breaker: CircuitBreaker
    now: float  # the caller's clock, as the call will give it
    seen: float  # monotonic
    permit: Permit


# per task: a checkout asks ``open_until`` before it reserves and charges later in the
# same task, at the same ``now``
_admitted: ContextVar[_Admitted | None] = ContextVar("qc_breaker_admitted", default=None)


class CircuitBreaker:
    def __init__(
        self, redis: aioredis.Redis, name: str = "payments", config: BreakerConfig | None = None
    ) -> None:
        self.redis = redis
        self.name = name
        self.config = config or BreakerConfig()
        self._keys = [keys.breaker_state(name), keys.breaker_window(name), keys.breaker_trial(name)]

    async def before_call(self, now: float) -> Permit:
        """A permit for one call, or ``CircuitOpen`` if the provider must not be called."""
        token = uuid.uuid4().hex
        answer = [
            scripts.text(v)
            for v in await scripts.run(
                self.redis,
                "payments/breaker",
                keys=self._keys,
                args=["before", now, token, now + self.config.trial_timeout_s],
            )
        ]
        if answer[0] == "ALLOW":
            return Permit(int(answer[1]))
        if answer[0] == "TRIAL":
            log.info("payment breaker half-open: trial call", extra={"breaker": self.name})
            return Permit(int(answer[1]), token)
        raise CircuitOpen(float(answer[1]))

    async def record(self, success: bool, now: float, *, permit: Permit) -> None:
        """Count the outcome of a call made under ``permit``.

        Outcomes of calls admitted under an earlier state (before the breaker opened) are
        ignored, and only the trial's outcome decides a half-open breaker.
        """
        c = self.config
        answer = [
            scripts.text(v)
            for v in await scripts.run(
                self.redis,
                "payments/breaker",
                keys=self._keys,
                args=[
                    "record",
                    now,
                    1 if success else 0,
                    permit.generation,
                    permit.trial_token or "",
                    c.window_s,
                    c.window_calls,
                    c.min_calls,
                    c.failure_ratio,
                    c.open_s,
                ],
            )
        ]
        if answer[0] == "OPENED":
            log.warning(
                "payment breaker opened",
                extra={"breaker": self.name, "open_until": float(answer[1])},
            )
        elif answer[0] == "CLOSED":
            log.info("payment breaker closed", extra={"breaker": self.name})

    async def open_until(self, now: float) -> float | None:
        """When an open breaker lets a trial through (None: calls may be made now): one
        read of the state, for a checkout that refuses early, before it reserves.

        A closed breaker's permit is its generation (what ``before_call`` would answer,
        changing nothing): it is kept for this task's call at the same ``now`` within
        ``ADMITTED_FOR_S`` (``admitted``), which then needs no script call of its own (a
        Redis round trip a checkout). A breaker that opens in between lets that call
        through, as it lets calls already in flight finish; their outcomes are ignored
        (an older generation)."""
        state, until, gen = await self.redis.hmget(self._keys[0], "state", "open_until", "gen")
        if state is None or scripts.text(state) == "closed":
            permit = Permit(int(gen or 0))
            _admitted.set(_Admitted(self, now, time.monotonic(), permit))
            return None
        _admitted.set(None)  # an earlier check's permit is not this state's
        if scripts.text(state) != "open" or until is None:
            return None
        return float(until) if now < float(until) else None

    def admitted(self, now: float) -> Permit | None:
        """The permit ``open_until`` found in this task for a call at ``now``, taken once;
        None when there is none (or it is too old): ask ``before_call``."""
        kept = _admitted.get()
        if kept is None:
            return None
        _admitted.set(None)
        if kept.breaker is not self or kept.now != now:
            return None
        if time.monotonic() - kept.seen > ADMITTED_FOR_S:
            return None
        return kept.permit

    async def snapshot(self, now: float) -> BreakerSnapshot:
        """The state as callers at ``now`` would see it (for health checks and tests)."""
        state_key, window_key, _ = self._keys
        fields = {
            scripts.text(k): scripts.text(v)
            for k, v in (await self.redis.hgetall(state_key)).items()
        }
        state = cast(BreakerState, fields.get("state", "closed"))
        open_until = float(fields["open_until"]) if state == "open" else None
        if open_until is not None and now >= open_until:
            state, open_until = "half_open", None
        members = [
            scripts.text(m)
            for m in await self.redis.zrangebyscore(window_key, now - self.config.window_s, "+inf")
        ]
        failures = sum(m.endswith(":fail") for m in members)
        return BreakerSnapshot(state, open_until, len(members), failures)
