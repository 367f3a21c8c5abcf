"""Token claims under concurrency: ``FOR UPDATE SKIP LOCKED`` hands every token to one
buyer only, and a buyer never waits for another buyer's open transaction."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from datetime import timedelta

import psycopg
import pytest

from server.flash.admission import claim_token
from server.kit import db
from server.kit.resources import resources_of
from tests.server.flash.flash_claimers import claim
from tests.server.flash.flash_helpers import (
    STORE,
    create_sale,
    flash_sku,
    manager_headers,
    stock_up,
)

UNITS, PROCESSES, BUYERS_PER_PROCESS = 25, 4, 15


@pytest.mark.slow
async def test_concurrent_buyers_in_processes_never_share_a_token(city, app, client, clock):
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, UNITS)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=UNITS
    )
    ctx = multiprocessing.get_context("spawn")
    jobs = [(city.database_url, sale["sale_id"], STORE, BUYERS_PER_PROCESS)] * PROCESSES
    with ctx.Pool(PROCESSES) as pool:
        results = pool.map(claim, jobs)
    won = [w for r in results for w in r]
    assert len(won) == UNITS  # 60 buyers on their own connections, 25 tokens: 25 claims
    assert len({token for token, _ in won}) == UNITS  # no token handed out twice
    with psycopg.connect(city.database_url) as conn:
        rows = conn.execute(
            "SELECT token_id::text, claimed_by::text, status FROM inventory_tokens "
            "WHERE sale_id = %s",
            (sale["sale_id"],),
        ).fetchall()
    assert {(t, c) for t, c, _ in rows} == set(won)
    assert {s for *_, s in rows} == {"CLAIMED"}


async def test_a_buyer_never_waits_for_another_buyers_open_transaction(city, app, client, clock):
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 3)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=3
    )
    sessions = resources_of(app).sessions
    sale_id = uuid.UUID(sale["sale_id"])

    async def claim_in(session) -> uuid.UUID | None:
        return await claim_token(
            session,
            sale_id=sale_id,
            store_id=STORE,
            customer_id=uuid.uuid4(),
            now=clock.now(),
            slot_expires_at=clock.now() + timedelta(seconds=60),
        )

    first = sessions()
    try:
        held = await claim_in(first)  # row locked, transaction left open
        async with sessions() as second:
            async with asyncio.timeout(15):  # would block until `first` ends without SKIP LOCKED
                other = await claim_in(second)
            await second.commit()
        assert held and other and held != other
    finally:
        await first.rollback()
        await first.close()
    async with db.transaction(sessions) as third:
        again = await claim_in(third)
    assert again == held  # the rolled-back claim left its token free
