"""The flash-sale bulkheads: a flash crowd cannot take what regular carts and checkouts
need in this process.

At most ``flash_bulkhead_queue`` queue requests that need PostgreSQL (a join that only
takes a place in line needs none, so it never waits here) and ``flash_bulkhead_checkout``
flash checkouts run at once (each holds database connections from the shared pool), a
request that cannot get in within ``flash_bulkhead_wait_s`` is answered 503 at once, and flash
payments go through their own provider slots (``flash_payment_bulkhead``) beside the
regular ones. The semaphores are per process (per uvicorn worker) like the payment
bulkhead: they guard local resources, so they need no coordination.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.kit.errors import ServiceUnavailable
from server.payments.gateway import PaymentGateway


class FlashBusy(ServiceUnavailable):
    code, title = "flash_busy", "The flash sale is busy"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after_s=1)
        self.headers = {"Retry-After": "1"}


class Bulkhead:
    """At most ``limit`` holders at once; others wait up to ``wait_s``, then 503."""

    def __init__(self, name: str, limit: int, wait_s: float) -> None:
        if limit < 1 or wait_s < 0:
            raise ValueError("a bulkhead needs limit >= 1 and wait_s >= 0")
        self.name, self.limit, self.wait_s = name, limit, wait_s
        self._slots = asyncio.Semaphore(limit)
        self.in_use = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise FlashBusy(
                f"too many flash-sale {self.name} requests in progress; try again shortly"
            ) from None
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()


def flash_gateway(regular: PaymentGateway, *, slots: int) -> PaymentGateway:
    """The regular provider and its shared breaker, behind the flash sale's own slots."""
    return PaymentGateway(
        regular.provider,
        regular.breaker,
        bulkhead_limit=slots,
        timeout_s=regular.timeout_s,
        bulkhead_wait_s=regular.bulkhead_wait_s,
    )
