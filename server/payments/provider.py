"""The payment provider interface, a simulated card/UPI gateway and signed webhooks.

A real provider adapter implements ``PaymentProvider`` and translates its transport and
5xx failures into ``ProviderError`` so the gateway (``server.payments.gateway``) can count
them against the circuit breaker. A declined card is an answer, not an error: it comes
back as a FAILED ``ChargeResult``.

A refund is paid out with ``refund`` under the refund's own idempotency key, so a retry
after a lost answer never pays twice; its final word comes by webhook too.

Webhooks are signed like Stripe's: the header ``t=<unix s>,v1=<hex>`` carries
HMAC-SHA256(secret, "<t>.<body>"); several ``v1`` entries are accepted so a secret can be
rotated without dropping events.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from server.kit.errors import DomainError

WEBHOOK_SIGNATURE_HEADER = "X-QC-Payment-Signature"
DECLINE_REASONS = ("card_declined", "insufficient_funds", "upi_rejected_by_bank")


class ChargeStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    # the customer still has to approve (UPI collect); the final status arrives by webhook
    PENDING = "PENDING"


@dataclass(frozen=True)
class ChargeResult:
    """The provider's answer to a charge or a refund."""

    status: ChargeStatus
    provider_ref: str | None = None
    failure_reason: str | None = None


class ProviderError(Exception):
    """The provider could not be reached or failed (5xx); counts as a breaker failure."""


class ProviderUnavailable(ProviderError):
    pass


class IdempotencyKeyReused(Exception):
    """The same idempotency key came with a different charge: a caller bug, not an outage."""


class PaymentProvider(Protocol):
    async def charge(
        self,
        *,
        payment_id: str,
        order_id: str,
        amount_paise: int,
        currency: str,
        idempotency_key: str,
    ) -> ChargeResult: ...

    async def charge_status(self, *, idempotency_key: str) -> ChargeResult | None:
        """What became of the charge made under this key (None: no charge was made)."""
        ...

    async def refund(
        self,
        *,
        refund_id: str,
        payment_id: str,
        order_id: str,
        amount_paise: int,
        currency: str,
        idempotency_key: str,
    ) -> ChargeResult:
        """Pay ``amount_paise`` of the payment's charge back; FAILED is final (e.g. more
        than was charged), ``ProviderError`` is worth a retry with the same key."""
        ...


class WebhookRejected(DomainError):
    status, code, title = 400, "webhook_rejected", "Webhook rejected"


CHARGE_EVENT, REFUND_EVENT = "charge.final", "refund.final"


@dataclass(frozen=True)
class WebhookEvent:
    """A provider's final word on a charge or a refund, as POSTed to the webhook endpoint."""

    event_id: str
    payment_id: str
    order_id: str
    amount_paise: int
    currency: str
    status: ChargeStatus
    provider_ref: str
    failure_reason: str | None
    created: int
    type: str = CHARGE_EVENT
    refund_id: str | None = None  # set on refund events

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> WebhookEvent:
        try:
            data: dict[str, Any] = json.loads(body)
            return cls(**{**data, "status": ChargeStatus(data["status"])})
        except (ValueError, TypeError, KeyError) as exc:
            raise WebhookRejected(
                "webhook body is not a charge event", code="webhook_malformed"
            ) from exc


@dataclass(frozen=True)
class WebhookDelivery:
    body: bytes
    headers: dict[str, str]


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_webhook(payload: bytes, secret: str, timestamp: float) -> str:
    """The signature header value for ``payload`` sent at ``timestamp`` (unix s)."""
    ts = int(timestamp)
    return f"t={ts},v1={_digest(payload, secret, ts)}"


def verify_webhook(
    payload: bytes, header: str | None, secret: str, now_ts: float, tolerance_s: float = 300
) -> None:
    """Raise ``WebhookRejected`` unless ``header`` signs ``payload`` with ``secret`` recently.

    ``now_ts`` is the server clock; the tolerance bounds replays of a captured event.
    """
    ts: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:  # a unix time, not a bignum
            ts = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if ts is None or not candidates:
        raise WebhookRejected("signature header is missing or malformed", code="webhook_malformed")
    if abs(now_ts - ts) > tolerance_s:
        raise WebhookRejected(
            f"webhook timestamp is {abs(now_ts - ts):.0f}s away from now", code="webhook_stale"
        )
    expected = _digest(payload, secret, ts)
    # compare every candidate in constant time; no early exit on the first mismatch
    matches = [hmac.compare_digest(expected, c) for c in candidates]
    if not any(matches):
        raise WebhookRejected("webhook signature does not match", code="webhook_bad_signature")


@dataclass
class _Charge:
    payment_id: str
    order_id: str
    amount_paise: int
    currency: str
    provider_ref: str
    result: ChargeResult
    # what the webhook reports; differs from ``result`` only for PENDING charges
    final: ChargeResult
    # the first answer is lost in transit (a timeout); the charge itself went through
    answer_lost: bool


@dataclass
class _Refund:
    refund_id: str
    payment_id: str
    order_id: str
    amount_paise: int
    currency: str
    result: ChargeResult


class SimulatedProvider:
    """An in-process card/UPI gateway for tests and the demo.

    Rates are fractions of new charges: ``failure_rate`` declines (a FAILED result),
    ``error_rate`` raise ``ProviderError``, ``timeout_rate`` never answer the first time
    (the charge is made, like a real lost response: a retry with the same key, or the
    webhook, tells the outcome), ``pending_rate`` answer PENDING and settle by webhook.
    Refunds share ``error_rate`` and ``timeout_rate`` (a lost answer: the refund is paid)
    and are refused when they would pay back more than a known charge took.
    Latency is real asyncio time, independent of the server clock. Set ``outage`` to
    "error" (every call raises ``ProviderUnavailable``) or "hang" (no call answers).
    """

    def __init__(
        self,
        *,
        latency_s: float | tuple[float, float] = 0.0,
        failure_rate: float = 0.0,
        timeout_rate: float = 0.0,
        error_rate: float = 0.0,
        pending_rate: float = 0.0,
        seed: int | None = None,
        webhook_secret: str,
    ) -> None:
        for rate in (failure_rate, timeout_rate, error_rate, pending_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("rates are fractions between 0 and 1")
        self.latency_s = latency_s
        self.failure_rate = failure_rate
        self.timeout_rate = timeout_rate
        self.error_rate = error_rate
        self.pending_rate = pending_rate
        self.webhook_secret = webhook_secret
        self.outage: Literal["error", "hang"] | None = None
        self.calls = 0
        self._rng = random.Random(seed)
        self._charges: dict[str, _Charge] = {}
        self._by_payment: dict[str, str] = {}
        self._refunds: dict[str, _Refund] = {}

    @property
    def charges(self) -> int:
        """Distinct charges made (replays of an idempotency key are not charges)."""
        return len(self._charges)

    @property
    def refunds(self) -> int:
        """Distinct refunds paid out (replays of an idempotency key are not refunds)."""
        return sum(1 for r in self._refunds.values() if r.result.status == ChargeStatus.SUCCEEDED)

    @property
    def refunded_paise(self) -> int:
        return sum(
            r.amount_paise
            for r in self._refunds.values()
            if r.result.status == ChargeStatus.SUCCEEDED
        )

    async def _answer_call(self) -> None:
        """Count the call; an outage answers it with an error or never."""
        self.calls += 1
        if self.outage == "hang":
            await asyncio.Event().wait()
        if self.outage == "error":
            raise ProviderUnavailable("simulated provider is down")

    def _maybe_fail(self) -> None:
        if self._rng.random() < self.error_rate:
            raise ProviderError("simulated provider error (HTTP 502)")

    def _latency(self) -> float:
        if isinstance(self.latency_s, tuple):
            return self._rng.uniform(*self.latency_s)
        return self.latency_s

    def _new_charge(
        self, payment_id: str, order_id: str, amount_paise: int, currency: str
    ) -> _Charge:
        ref = f"sim_ch_{self._rng.getrandbits(64):016x}"
        if self._rng.random() < self.failure_rate:
            final = ChargeResult(ChargeStatus.FAILED, ref, self._rng.choice(DECLINE_REASONS))
        else:
            final = ChargeResult(ChargeStatus.SUCCEEDED, ref)
        pending = self._rng.random() < self.pending_rate
        return _Charge(
            payment_id=payment_id,
            order_id=order_id,
            amount_paise=amount_paise,
            currency=currency,
            provider_ref=ref,
            result=ChargeResult(ChargeStatus.PENDING, ref) if pending else final,
            final=final,
            answer_lost=self._rng.random() < self.timeout_rate,
        )

    async def charge(
        self,
        *,
        payment_id: str,
        order_id: str,
        amount_paise: int,
        currency: str,
        idempotency_key: str,
    ) -> ChargeResult:
        await self._answer_call()
        # decide before the first await so concurrent replays of a key see one charge
        known = self._charges.get(idempotency_key)
        if known is None:
            self._maybe_fail()
            known = self._new_charge(payment_id, order_id, amount_paise, currency)
            self._charges[idempotency_key] = known
            self._by_payment[payment_id] = idempotency_key
            if known.answer_lost:
                await asyncio.Event().wait()
        elif (known.payment_id, known.order_id, known.amount_paise, known.currency) != (
            payment_id,
            order_id,
            amount_paise,
            currency,
        ):
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency_key} was used for another charge"
            )
        await asyncio.sleep(self._latency())
        return known.result

    async def charge_status(self, *, idempotency_key: str) -> ChargeResult | None:
        """The key's charge as the provider answers it now, even when its first answer
        was lost (a pending one stays PENDING: its final status comes by webhook)."""
        known = self._charges.get(idempotency_key)
        return None if known is None else known.result

    async def refund(
        self,
        *,
        refund_id: str,
        payment_id: str,
        order_id: str,
        amount_paise: int,
        currency: str,
        idempotency_key: str,
    ) -> ChargeResult:
        await self._answer_call()
        known = self._refunds.get(idempotency_key)  # decided before the first await
        if known is None:
            self._maybe_fail()
            known = self._new_refund(refund_id, payment_id, order_id, amount_paise, currency)
            self._refunds[idempotency_key] = known
            if self._rng.random() < self.timeout_rate:
                await asyncio.Event().wait()
        elif (known.refund_id, known.amount_paise) != (refund_id, amount_paise):
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency_key} was used for another refund"
            )
        await asyncio.sleep(self._latency())
        return known.result

    def _new_refund(
        self, refund_id: str, payment_id: str, order_id: str, amount_paise: int, currency: str
    ) -> _Refund:
        ref = f"sim_rf_{self._rng.getrandbits(64):016x}"
        result = ChargeResult(ChargeStatus.SUCCEEDED, ref)
        # the simulator keeps no books across restarts: only a charge it knows bounds a refund
        key = self._by_payment.get(payment_id)
        if key is not None:
            charged = self._charges[key].amount_paise
            paid_back = sum(
                r.amount_paise
                for r in self._refunds.values()
                if r.payment_id == payment_id and r.result.status == ChargeStatus.SUCCEEDED
            )
            if paid_back + amount_paise > charged:
                result = ChargeResult(ChargeStatus.FAILED, ref, "refund_exceeds_charge")
        return _Refund(refund_id, payment_id, order_id, amount_paise, currency, result)

    def refund_webhook_event(self, refund_id: str, *, now_ts: float) -> WebhookDelivery:
        """The signed webhook the provider sends for a refund (its final status)."""
        refund = next(r for r in self._refunds.values() if r.refund_id == refund_id)
        assert refund.result.provider_ref is not None  # every simulated refund has a ref
        return self._signed(
            WebhookEvent(
                event_id=f"sim_evt_{self._rng.getrandbits(64):016x}",
                payment_id=refund.payment_id,
                order_id=refund.order_id,
                amount_paise=refund.amount_paise,
                currency=refund.currency,
                status=refund.result.status,
                provider_ref=refund.result.provider_ref,
                failure_reason=refund.result.failure_reason,
                created=int(now_ts),
                type=REFUND_EVENT,
                refund_id=refund.refund_id,
            ),
            now_ts,
        )

    def _signed(self, event: WebhookEvent, now_ts: float) -> WebhookDelivery:
        body = event.to_json()
        signature = sign_webhook(body, self.webhook_secret, now_ts)
        return WebhookDelivery(
            body=body,
            headers={"Content-Type": "application/json", WEBHOOK_SIGNATURE_HEADER: signature},
        )

    def webhook_event(self, payment_id: str, *, now_ts: float) -> WebhookDelivery:
        """The signed webhook the provider sends for a charge (its final status)."""
        charge = self._charges[self._by_payment[payment_id]]
        event = WebhookEvent(
            event_id=f"sim_evt_{self._rng.getrandbits(64):016x}",
            payment_id=charge.payment_id,
            order_id=charge.order_id,
            amount_paise=charge.amount_paise,
            currency=charge.currency,
            status=charge.final.status,
            provider_ref=charge.provider_ref,
            failure_reason=charge.final.failure_reason,
            created=int(now_ts),
        )
        return self._signed(event, now_ts)
