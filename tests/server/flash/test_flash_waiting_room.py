"""The waiting room (issue 17 point 8): customers who join before the start all wait; the
start shuffles them once (arriving early is no advantage) ahead of anyone later; admission
follows the shuffled order at a rate on the server clock; a join costs the same number of
Redis commands whatever the crowd."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from typing import cast

import pytest
import redis.asyncio as aioredis

from server.flash import queue, tick
from server.kit import keys
from server.kit.clock import ManualClock
from server.kit.redis import create_redis, is_cluster_url
from server.kit.resources import resources_of
from tests.server.flash.flash_helpers import (
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(round(time.time()))  # the server clock moves only when told


async def _join(client, sale_id: str, headers: dict[str, str]) -> dict:
    r = await client.post(
        f"/v1/flash-sales/{sale_id}/queue", json={"store_id": STORE}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


# The app's clients decode answers (decode_responses): members and values are str, which
# redis-py's types cannot know, so these say it once.
async def _line(redis: aioredis.Redis, key: str) -> list[str]:
    """A sorted set's members, lowest score first."""
    return cast(list[str], await redis.zrange(key, 0, -1))


async def _scores(redis: aioredis.Redis, key: str) -> list[tuple[str, float]]:
    """A sorted set's members with their scores, lowest first."""
    return cast(list[tuple[str, float]], await redis.zrange(key, 0, -1, withscores=True))


async def _admits(redis: aioredis.Redis, sale_id: str) -> dict[str, str]:
    """The sale's admitted customers: customer -> "admit_no:ticket"."""
    return cast(dict[str, str], await redis.hgetall(keys.flash_admits(sale_id)))


async def _tick(app) -> None:
    resources = resources_of(app)
    await tick.tick(
        resources.sessions, resources.redis, clock=resources.clock, settings=resources.settings
    )


async def test_early_joins_wait_then_are_shuffled_ahead_and_admitted_at_a_rate(
    city, app, client, clock: ManualClock
) -> None:
    settings = resources_of(app).settings
    settings.flash_admit_rate_per_s, settings.flash_admit_burst = 2.0, 5
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 10)
    manager = manager_headers(clock, city.database_url)
    # joins open 15 min ahead; earlier than that the sale has not started for anyone
    sale = await create_sale(client, manager, clock, sku=sku, units=10, starts_in_s=1200)
    sid = sale["sale_id"]
    crowd = make_customers(city.database_url, clock, 31)
    early, late = crowd[:30], crowd[30]
    r = await client.post(
        f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=early[0][1]
    )
    assert r.status_code == 409 and r.json()["code"] == "flash_not_started"
    clock.advance(600)  # 10 minutes to go: the waiting room is open
    for _, headers in early:
        entry = await _join(client, sid, headers)
        assert entry["status"] == "WAITING" and entry["position"] is None
        assert entry["ticket"] is None and entry["estimated_wait_s"] == 600
    assert (await _join(client, sid, early[0][1]))["status"] == "WAITING"  # a repeat
    await _tick(app)  # before the start the tick leaves the room alone
    assert await resources_of(app).redis.zcard(keys.flash_early(sid, STORE)) == 30
    clock.advance(600)  # the start: the first join after it shuffles the room first
    entry = await _join(client, sid, late[1])
    assert entry["status"] == "WAITING" and entry["ticket"] == 31  # behind everyone early
    redis = resources_of(app).redis
    tickets = {uuid.UUID(c): int(t) for c, t in await _scores(redis, keys.flash_wait(sid, STORE))}
    admits = await _admits(redis, sid)
    # the late join found a free slot: the budget's burst (5) went to the shuffled head
    assert len(admits) == 5
    by_ticket = {int(v.split(":")[1]): c for c, v in admits.items()}
    assert sorted(by_ticket) == [1, 2, 3, 4, 5]
    order = sorted(tickets, key=tickets.__getitem__)
    assert len(order) == 26 and tickets[late[0]] == 31
    arrival = [str(c) for c, _ in early]
    shuffled = [by_ticket[t] for t in sorted(by_ticket)] + [str(c) for c in order[:-1]]
    assert sorted(shuffled) == sorted(arrival) and shuffled != arrival
    # then 2 a second on the server clock, in ticket order
    counts = []
    for step in (0.0, 1.0, 0.5, 0.5, 0.25):
        clock.advance(step)
        await _tick(app)
        counts.append(len(await _admits(redis, sid)))
    assert counts == [5, 7, 8, 9, 9]
    admits = await _admits(redis, sid)
    assert sorted(int(v.split(":")[1]) for v in admits.values()) == list(range(1, 10))


async def _fresh_line(redis: aioredis.Redis, sale: str, *, started: bool) -> None:
    await redis.delete(
        keys.flash_state(sale, STORE),
        keys.flash_early(sale, STORE),
        keys.flash_wait(sale, STORE),
        keys.flash_tickets(sale),
        keys.flash_entries(sale),
    )
    await queue.init(
        redis, sale_id=sale, store_id=STORE, open_=True, reason="", units=10, free=10,
        slot_s=60, slots=[], max_ticket=0, max_admit=0, started=started,
    )  # fmt: skip


async def test_the_start_shuffle_is_a_uniform_permutation(clean) -> None:
    """2,400 starts of a room of 4 (seeds 1..2400): each of the 24 orders about 100 times
    (chi-square, 23 degrees of freedom, p = 0.001 at 49.7) and each customer at each place
    about 600 times. A biased shuffle (e.g. swapping with any place) fails it."""
    redis = create_redis(clean.redis_url)
    sale, people = "shuffle-test", ["a", "b", "c", "d"]
    orders: Counter[tuple[str, ...]] = Counter()
    places: Counter[tuple[str, int]] = Counter()
    try:
        for seed in range(1, 2401):
            await _fresh_line(redis, sale, started=False)
            for who in people:
                joined = await queue.join(
                    redis,
                    sale_id=sale,
                    store_id=STORE,
                    customer=who,
                    max_slots=1,
                    now=0,
                    starts=1,
                    limit=1,
                )
                assert joined.status == "EARLY"
            assert await queue.start(redis, sale_id=sale, store_id=STORE, seed=seed) == 4
            line = tuple(await _line(redis, keys.flash_wait(sale, STORE)))
            orders[line] += 1
            places.update((who, i) for i, who in enumerate(line))
    finally:
        await redis.aclose()
    expected = 2400 / 24
    assert set(orders) == set(itertools.permutations(people))
    chi2 = sum((n - expected) ** 2 / expected for n in orders.values())
    assert chi2 < 49.7, orders
    assert all(abs(n - 600) < 90 for n in places.values()), places  # ~5 sigma of 21


async def test_a_join_costs_the_same_commands_in_an_empty_room_and_in_a_crowd(clean) -> None:
    """Joining the waiting room is O(log n) (one ZADD) and a constant number of commands:
    the 20,001st join runs exactly the commands the 2nd did."""
    if is_cluster_url(clean.redis_url) or not clean.embedded:
        # commandstats are per node on a cluster, and server-wide on a shared server (the
        # other test workers' commands count too): counted on the suite's own Valkey
        pytest.skip("counted on the suite's own single-node Valkey")
    redis = create_redis(clean.redis_url)
    sale = "crowd-test"

    async def one(who: str) -> None:
        joined = await queue.join(
            redis,
            sale_id=sale,
            store_id=STORE,
            customer=who,
            max_slots=1,
            now=0,
            starts=1,
            limit=1,
        )
        assert joined.status == "EARLY"

    async def commands_of(who: str) -> Counter[str]:
        before = await redis.info("commandstats")
        await one(who)
        after = await redis.info("commandstats")
        return Counter(
            {k: after[k]["calls"] - before.get(k, {}).get("calls", 0) for k in after}
        ) - Counter({"cmdstat_info": 1})

    try:
        await _fresh_line(redis, sale, started=False)
        await one("first")
        small = await commands_of("second")
        crowd = [f"c{i}" for i in range(20_000)]
        for i in range(0, len(crowd), 50):  # 50 at once: the client's pool
            await asyncio.gather(*(one(who) for who in crowd[i : i + 50]))
        assert await redis.zcard(keys.flash_early(sale, STORE)) == 20_002
        assert await commands_of("last") == small
        assert await queue.start(redis, sale_id=sale, store_id=STORE, seed=7) == 20_003
        assert await redis.zcard(keys.flash_wait(sale, STORE)) == 20_003
        joined = await queue.join(
            redis,
            sale_id=sale,
            store_id=STORE,
            customer="after",
            max_slots=1,
            now=2,
            starts=1,
            limit=1,
        )
        assert joined.status == "WAITING" and joined.ticket == 20_004 and joined.rank == 20_003
    finally:
        await redis.aclose()


async def test_one_turns_joins_are_one_call_with_tickets_in_the_order_they_came(clean) -> None:
    """The joins of one event-loop turn to a line go to Valkey as one ``join.lua`` call
    (``queue._turn_joins``): each its own answer, tickets in the order the joins came, a
    customer joining twice in the turn keeps the first ticket."""
    if is_cluster_url(clean.redis_url) or not clean.embedded:
        pytest.skip("commandstats counted on the suite's own single-node Valkey")
    redis = create_redis(clean.redis_url)
    sale = "turn-test"

    async def one(who: str) -> queue.Joined:
        return await queue.join(
            redis, sale_id=sale, store_id=STORE, customer=who, max_slots=0, now=2, starts=1,
            limit=1,
        )  # fmt: skip

    try:
        await _fresh_line(redis, sale, started=True)
        await one("warm")  # the script loaded: not counted below
        before = await redis.info("commandstats")
        people = ["p", "q", "r", "q", "s"]
        answers = await asyncio.gather(*(one(who) for who in people))
        after = await redis.info("commandstats")
        assert after["cmdstat_evalsha"]["calls"] - before["cmdstat_evalsha"]["calls"] == 1
        assert [a.status for a in answers] == ["WAITING"] * 5
        assert [a.ticket for a in answers] == [2, 3, 4, 3, 5]
    finally:
        await redis.aclose()


async def test_one_turns_polls_are_one_call_each_with_each_askers_place(clean) -> None:
    """The polls of one event-loop turn share one ``HMGET`` for their entries
    (``queue._turn_entries``) and one ``positions.lua`` call per line
    (``queue._turn_positions``); each asker gets its own entry and place, a repeated asker
    the same, a customer not in line none."""
    if is_cluster_url(clean.redis_url) or not clean.embedded:
        pytest.skip("commandstats counted on the suite's own single-node Valkey")
    redis = create_redis(clean.redis_url)
    sale = "poll-turn-test"

    try:
        await _fresh_line(redis, sale, started=True)
        for who in ["a", "b", "c"]:
            await queue.join(
                redis, sale_id=sale, store_id=STORE, customer=who, max_slots=0, now=2,
                starts=1, limit=1,
            )  # fmt: skip
        await queue.position(redis, sale_id=sale, store_id=STORE, customer="a")  # loaded
        askers = ["c", "a", "x", "c"]
        before = await redis.info("commandstats")
        entries = await asyncio.gather(
            *(queue.entry_of(redis, sale_id=sale, customer=who) for who in askers)
        )
        middle = await redis.info("commandstats")
        views = await asyncio.gather(
            *(queue.position(redis, sale_id=sale, store_id=STORE, customer=who) for who in askers)
        )
        after = await redis.info("commandstats")
    finally:
        await redis.aclose()
    assert middle["cmdstat_hmget"]["calls"] - before.get("cmdstat_hmget", {}).get("calls", 0) == 1
    assert after["cmdstat_evalsha"]["calls"] - middle["cmdstat_evalsha"]["calls"] == 1
    assert entries == [STORE, STORE, None, STORE]
    places = [view.customers[who].rank for view, who in zip(views, askers, strict=True)]
    assert places == [2, 0, None, 2]
    assert views[0].waiting == 3
