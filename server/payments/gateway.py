"""The one door to the payment provider: bulkhead, circuit breaker and timeout.

``PaymentGateway.charge`` answers in one of three ways:

* a ``ChargeResult`` from the provider: SUCCEEDED (commit stock, confirm the order),
  FAILED with the provider's reason (a decline: release stock, cancel the order) or
  PENDING (the final status comes by webhook);
* a FAILED result with reason ``timeout`` or ``provider_error`` when the provider did not
  answer in ``timeout_s`` or failed; both count against the breaker. After a timeout the
  charge may still have gone through: the webhook, or a retry with the same idempotency
  key, tells;
* ``PaymentUnavailable`` (503 ``payment_unavailable`` with ``Retry-After``) without calling
  the provider: ``CircuitOpen`` while the breaker is open, ``BulkheadFull`` when every
  provider slot of this process stays busy for ``bulkhead_wait_s``.

The bulkhead is an ``asyncio.Semaphore`` per process (per uvicorn worker): its job is to
keep a slow provider from tying up this worker's connections and tasks, which is a local
resource, so it needs no coordination; the cluster-wide limit is ``limit * workers``.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from server.payments.breaker import CircuitBreaker, PaymentUnavailable, Permit
from server.payments.provider import ChargeResult, ChargeStatus, PaymentProvider, ProviderError

log = logging.getLogger(__name__)


class BulkheadFull(PaymentUnavailable):
    def __init__(self) -> None:
        super().__init__("too many payments in progress; try again shortly", retry_after_s=1)


class PaymentGateway:
    def __init__(
        self,
        provider: PaymentProvider,
        breaker: CircuitBreaker,
        *,
        bulkhead_limit: int,
        timeout_s: float,
        bulkhead_wait_s: float = 0.05,
    ) -> None:
        if bulkhead_limit < 1 or timeout_s <= 0 or bulkhead_wait_s < 0:
            raise ValueError("need bulkhead_limit >= 1, timeout_s > 0, bulkhead_wait_s >= 0")
        if timeout_s > breaker.config.trial_timeout_s:
            raise ValueError("the breaker's trial_timeout_s must cover the provider timeout")
        self.provider = provider
        self.breaker = breaker
        self.timeout_s = timeout_s
        self.bulkhead_wait_s = bulkhead_wait_s
        self._slots = asyncio.Semaphore(bulkhead_limit)

    async def charge(
        self,
        *,
        payment_id: str,
        order_id: str,
        amount_paise: int,
        currency: str,
        idempotency_key: str,
        now: float,
    ) -> ChargeResult:
        """Charge once through the breaker; ``now`` is the server clock at the start.

        The outcome is recorded at ``now`` too: a call is dated by when it was admitted.
        """
        try:
            async with asyncio.timeout(self.bulkhead_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise BulkheadFull() from None
        try:
            # inside the slot, so a half-open trial permit is never taken by a caller that
            # then cannot make the call; a closed breaker's permit may have come with the
            # checkout's early check (``CircuitBreaker.open_until``)
            permit = self.breaker.admitted(now) or await self.breaker.before_call(now)
            try:
                async with asyncio.timeout(self.timeout_s):
                    result = await self.provider.charge(
                        payment_id=payment_id,
                        order_id=order_id,
                        amount_paise=amount_paise,
                        currency=currency,
                        idempotency_key=idempotency_key,
                    )
            except TimeoutError:
                result = ChargeResult(ChargeStatus.FAILED, failure_reason="timeout")
                await self._record(False, now, permit)
            except ProviderError as exc:
                log.warning("payment provider error: %s", exc, extra={"payment_id": payment_id})
                result = ChargeResult(ChargeStatus.FAILED, failure_reason="provider_error")
                await self._record(False, now, permit)
            else:
                # any answer, a decline included, means the provider is healthy
                await self._record(True, now, permit)
            return result
        finally:
            self._slots.release()

    async def charge_status(self, *, idempotency_key: str) -> ChargeResult | None:
        """Ask the provider what became of a charge (None: it made none). Raises
        ``ProviderError`` when it cannot tell now; a lookup is not a payment, so it passes
        neither the bulkhead nor the breaker."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.provider.charge_status(idempotency_key=idempotency_key)
        except TimeoutError:
            raise ProviderError("the payment provider did not answer a status lookup") from None

    async def refund(
        self,
        *,
        refund_id: str,
        payment_id: str,
        order_id: str,
        amount_paise: int,
        currency: str,
    ) -> ChargeResult:
        """Pay a refund out under its own id as the idempotency key. Raises
        ``ProviderError`` when the provider did not answer or failed (the refund may have
        been paid: a retry with the same key tells). Refunds run in the background, so they
        skip the checkout's bulkhead and breaker."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.provider.refund(
                    refund_id=refund_id,
                    payment_id=payment_id,
                    order_id=order_id,
                    amount_paise=amount_paise,
                    currency=currency,
                    idempotency_key=refund_id,
                )
        except TimeoutError:
            raise ProviderError("the payment provider did not answer a refund") from None

    async def _record(self, success: bool, now: float, permit: Permit) -> None:
        # The charge already happened; losing one breaker sample must not lose its result.
        try:
            await self.breaker.record(success, now, permit=permit)
        except RedisError:
            log.exception("could not record a payment outcome in the breaker")
