"""The virtual queue in Redis: one Python function per Lua script (``lua/*.lua``).

Per sale and store: a waiting line (zset by join ticket), the checkout slots (zset by
slot expiry), and ``free``, the tokens no slot holds yet. Admission pops the head of the
line only while a slot and a free token exist, so FIFO order and "never more customers
in checkout than tokens" are decided atomically in Redis; PostgreSQL then hands each
admitted customer a token (``FOR UPDATE SKIP LOCKED``) and is the truth about tokens.
Every ``free`` change is tied to a slot starting or ending, which keeps the count equal
to PostgreSQL's AVAILABLE tokens whatever order replicas interleave in.

Before the sale starts, joins wait in a waiting room (``early``): ``start`` shuffles it
once into the line's first tickets, so arriving a second early is no advantage; later
joins queue behind. Admission is by slots and free tokens and, with a rate, by a token
bucket on the server clock.

Expiry is never a TTL: slot expiries are scores read against the server clock.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from server.kit import keys, scripts
from server.kit.coalesce import TurnBatcher
from server.kit.errors import DomainError


class QueueNotReady(DomainError):
    """This sale's line is not loaded in Redis yet; the caller loads it and retries."""

    status, code, title = 503, "flash_queue_loading", "The queue is being loaded"


def _line_keys(sale_id: str, store_id: str) -> list[str]:
    """state, wait, slots, free, admits, entries: the keys most scripts share."""
    return [
        keys.flash_state(sale_id, store_id),
        keys.flash_wait(sale_id, store_id),
        keys.flash_slots(sale_id, store_id),
        keys.flash_free(sale_id, store_id),
        keys.flash_admits(sale_id),
        keys.flash_entries(sale_id),
    ]


@dataclass(frozen=True)
class Joined:
    status: Literal["WAITING", "EARLY", "ADMITTED", "CLOSED", "ELSEWHERE", "LIMIT"]
    ticket: int | None = None
    rank: int | None = None  # 0 = next in line
    can_admit: bool = False
    slot_expires: float | None = None
    reason: str | None = None  # CLOSED: sold_out, stopped, ended
    store_id: str | None = None  # ELSEWHERE: the store whose line holds the entry
    early: int = 0  # EARLY: how many wait in the waiting room
    # WAITING and EARLY: the line's figures (the entry is described without another call)
    in_slots: int = 0
    free: int = 0
    avg_slot_s: float | None = None


async def join(
    client: aioredis.Redis,
    *,
    sale_id: str,
    store_id: str,
    customer: str,
    max_slots: int,
    now: float,
    starts: float,
    limit: int,
) -> Joined:
    """Join the line, or the waiting room before ``starts``; a join after the start runs
    the shuffle first if nobody has yet. A customer who bought ``limit`` units: LIMIT."""
    attempt = functools.partial(
        _join, client, sale_id=sale_id, store_id=store_id, customer=customer,
        max_slots=max_slots, now=now, starts=starts, limit=limit,
    )  # fmt: skip
    answer = await attempt()
    if answer[0] == "START_DUE":
        await start(client, sale_id=sale_id, store_id=store_id)
        answer = await attempt()
    status = answer[0]
    if status == "NOT_READY":
        raise QueueNotReady(f"the line of {sale_id} at {store_id} is being loaded")
    if status == "WAITING":
        return Joined(
            "WAITING",
            ticket=int(answer[1]),
            rank=int(answer[2]),
            can_admit=answer[3] == "1",
            in_slots=int(answer[4]),
            free=int(answer[5]),
            avg_slot_s=float(answer[6]) if answer[6] else None,
        )
    if status == "EARLY":
        return Joined("EARLY", early=int(answer[1]), in_slots=int(answer[2]), free=int(answer[3]))
    if status == "ADMITTED":
        return Joined("ADMITTED", slot_expires=float(answer[1]))
    if status == "CLOSED":
        return Joined("CLOSED", reason=answer[1] or "closed")
    if status == "LIMIT":
        return Joined("LIMIT")
    return Joined("ELSEWHERE", store_id=answer[1])


async def _join(
    client: aioredis.Redis,
    *,
    sale_id: str,
    store_id: str,
    customer: str,
    max_slots: int,
    now: float,
    starts: float,
    limit: int,
) -> list[str]:
    line = (client, sale_id, store_id, max_slots, starts, limit)
    return await _turn_joins.submit(line, (customer, now))


async def _joins_of_turn(
    line: tuple[aioredis.Redis, str, str, int, float, int], joining: list[tuple[str, float]]
) -> list[list[str]]:
    client, sale_id, store_id, max_slots, starts, limit = line
    args: list[str | int] = [store_id, max_slots, repr(starts), limit]
    for customer, now in joining:
        args += (customer, repr(now))
    answer = [
        scripts.text(v)
        for v in await scripts.run(
            client,
            "flash/join",
            keys=[
                keys.flash_state(sale_id, store_id),
                keys.flash_entries(sale_id),
                keys.flash_tickets(sale_id),
                keys.flash_wait(sale_id, store_id),
                keys.flash_slots(sale_id, store_id),
                keys.flash_free(sale_id, store_id),
                keys.flash_early(sale_id, store_id),
                keys.flash_bought(sale_id),
            ],
            args=args,
        )
    ]
    return [answer[i : i + 7] for i in range(0, len(answer), 7)]


# the joins of one event-loop turn to one line go to Redis as one call, in the order they
# came (their tickets in that order): a crowd's joins share a call's cost; one call out at
# a time, the next gathering meanwhile (``coalesce``)
_turn_joins: TurnBatcher[
    tuple[aioredis.Redis, str, str, int, float, int], tuple[str, float], list[str]
] = TurnBatcher(_joins_of_turn, max_items=500, in_flight=1)


async def record_bought(client: aioredis.Redis, *, sale_id: str, counts: dict[str, int]) -> None:
    """Customers' units bought in the sale, as PostgreSQL counted them (never lowered)."""
    if counts:
        args: list[Any] = []
        for customer, n in counts.items():
            args += [customer, n]
        await scripts.run(client, "flash/bought", keys=[keys.flash_bought(sale_id)], args=args)


async def start(
    client: aioredis.Redis, *, sale_id: str, store_id: str, seed: int | None = None
) -> int:
    """Shuffle the waiting room into the line (once; -1 if it was done). ``seed``: tests
    only; the sale's shuffle draws it from a secure source."""
    return int(
        await scripts.run(
            client,
            "flash/start",
            keys=[
                keys.flash_state(sale_id, store_id),
                keys.flash_early(sale_id, store_id),
                keys.flash_wait(sale_id, store_id),
                keys.flash_tickets(sale_id),
            ],
            args=[secrets.randbits(31) if seed is None else seed],
        )
    )


@dataclass(frozen=True)
class Admission:
    customer: str
    ticket: int
    admit_no: int


async def admit(
    client: aioredis.Redis,
    *,
    sale_id: str,
    store_id: str,
    slot_expires: float,
    max_slots: int,
    now: float,
    rate: float = 0.0,
    burst: int = 1,
) -> list[Admission]:
    """Pop the head of the line into checkout slots; [] when closed or nothing to do.
    ``rate`` > 0: at most ``burst`` at once and ``rate`` per second of ``now`` after."""
    state, wait, slots, free, _, _ = _line_keys(sale_id, store_id)
    answer = [
        scripts.text(v)
        for v in await scripts.run(
            client,
            "flash/admit",
            keys=[state, wait, slots, free, keys.flash_admitted(sale_id)],
            args=[repr(slot_expires), max_slots, repr(now), repr(rate), burst],
        )
    ]
    if answer[0] == "NOT_READY":
        raise QueueNotReady(f"the line of {sale_id} at {store_id} is being loaded")
    body = answer[1:]
    return [
        Admission(body[i], int(float(body[i + 1])), int(body[i + 2]))
        for i in range(0, len(body), 3)
    ]


async def confirm(
    client: aioredis.Redis, *, sale_id: str, store_id: str, admissions: list[Admission]
) -> int:
    """Announce admissions whose PostgreSQL claims committed (status ADMITTED from now)."""
    if not admissions:
        return 0
    args: list[Any] = []
    for a in admissions:
        args += [a.customer, f"{a.admit_no}:{a.ticket}"]
    return int(
        await scripts.run(
            client,
            "flash/confirm",
            keys=[keys.flash_slots(sale_id, store_id), keys.flash_admits(sale_id)],
            args=args,
        )
    )


@dataclass(frozen=True)
class Released:
    ended: int
    exhausted: bool  # no free token and no slot: sold out, or the count is off (refill)
    can_admit: bool = False


async def unadmit(
    client: aioredis.Redis,
    *,
    sale_id: str,
    store_id: str,
    admissions: list[Admission],
    refund: bool,
) -> Released:
    """Put admitted customers back in line (their PostgreSQL claim did not happen)."""
    args: list[Any] = ["1" if refund else "0", store_id]
    for a in admissions:
        args += [a.customer, a.ticket]
    answer = await scripts.run(
        client, "flash/unadmit", keys=_line_keys(sale_id, store_id), args=args
    )
    return Released(int(answer[0]), answer[1] == 1)


Outcome = Literal["returned", "sold"]


async def release(
    client: aioredis.Redis,
    *,
    sale_id: str,
    store_id: str,
    ended: dict[str, Outcome],
    now: float,
    slot_s: int,
    max_slots: int,
) -> Released:
    """End slots ("returned": the token is free again; "sold")."""
    args: list[Any] = [repr(now), slot_s, store_id, max_slots]
    for customer, outcome in ended.items():
        args += [customer, outcome]
    answer = await scripts.run(
        client, "flash/release", keys=_line_keys(sale_id, store_id), args=args
    )
    return Released(int(answer[0]), answer[1] == 1, answer[2] == 1)


async def refill(client: aioredis.Redis, *, sale_id: str, store_id: str, free: int) -> bool:
    """Set an exhausted line's free count from PostgreSQL; False if it moved meanwhile."""
    return bool(
        await scripts.run(
            client,
            "flash/refill",
            keys=[
                keys.flash_state(sale_id, store_id),
                keys.flash_slots(sale_id, store_id),
                keys.flash_free(sale_id, store_id),
            ],
            args=[free],
        )
    )


async def leave(client: aioredis.Redis, *, sale_id: str, store_id: str, customer: str) -> bool:
    """A waiting customer leaves the line; False if they were not waiting."""
    left = await scripts.run(
        client,
        "flash/leave",
        keys=[
            keys.flash_wait(sale_id, store_id),
            keys.flash_entries(sale_id),
            keys.flash_early(sale_id, store_id),
        ],
        args=[customer, store_id],
    )
    return bool(left)


async def close(client: aioredis.Redis, *, sale_id: str, store_id: str, reason: str) -> int:
    """Close the line for good (stop, end); returns how many were still waiting."""
    return int(
        await scripts.run(
            client,
            "flash/close",
            keys=[*_line_keys(sale_id, store_id), keys.flash_early(sale_id, store_id)],
            args=[reason, store_id],
        )
    )


@dataclass(frozen=True)
class Slot:
    customer: str
    expires: float
    admit_no: int
    ticket: int


async def init(
    client: aioredis.Redis,
    *,
    sale_id: str,
    store_id: str,
    open_: bool,
    reason: str,
    units: int,
    free: int,
    slot_s: int,
    slots: list[Slot],
    max_ticket: int,
    max_admit: int,
    started: bool = True,
) -> bool:
    """Load a line from PostgreSQL's figures unless it is loaded already (not
    ``started``: joins go to the waiting room until ``start``)."""
    state, _, slot_key, free_key, admits, entries = _line_keys(sale_id, store_id)
    args: list[Any] = [
        "open" if open_ else "closed",
        reason,
        units,
        free,
        slot_s,
        store_id,
        max_ticket,
        max_admit,
        1 if started else 0,
    ]
    for slot in slots:
        args += [slot.customer, repr(slot.expires), f"{slot.admit_no}:{slot.ticket}"]
    loaded = await scripts.run(
        client,
        "flash/init",
        keys=[
            state,
            slot_key,
            free_key,
            entries,
            admits,
            keys.flash_tickets(sale_id),
            keys.flash_admitted(sale_id),
        ],
        args=args,
    )
    return bool(loaded)


@dataclass(frozen=True)
class Standing:
    rank: int | None  # 0 = next in line; None: not waiting
    ticket: int | None
    slot_expires: float | None
    admit_no: int | None
    early: bool = False  # in the waiting room (the sale has not started)


@dataclass(frozen=True)
class LineView:
    loaded: bool
    open: bool
    reason: str | None
    waiting: int
    in_slots: int
    free: int
    avg_slot_s: float | None
    customers: dict[str, Standing]
    early: int = 0  # in the waiting room


async def positions(
    client: aioredis.Redis, *, sale_id: str, store_id: str, customers: list[str]
) -> LineView:
    """The line's figures and where each of ``customers`` stands, in one call."""
    state, wait, slots, free, admits, _ = _line_keys(sale_id, store_id)
    answer = [
        scripts.text(v)
        for v in await scripts.run(
            client,
            "flash/positions",
            keys=[state, wait, slots, free, admits, keys.flash_early(sale_id, store_id)],
            args=customers,
        )
    ]
    standing = {}
    body = answer[7:]
    for i, customer in enumerate(customers):
        rank, ticket, expires, admission = body[4 * i : 4 * i + 4]
        admit_no, _, admitted_ticket = admission.partition(":")
        ticket = ticket or admitted_ticket
        standing[customer] = Standing(
            None if int(rank) < 0 else int(rank),
            int(float(ticket)) if ticket else None,
            float(expires) if expires else None,
            int(admit_no) if admit_no else None,
            early=int(rank) == -2,
        )
    return LineView(
        loaded=bool(answer[0]),
        open=answer[0] == "open",
        reason=answer[1] or None,
        waiting=int(answer[2]),
        in_slots=int(answer[3]),
        free=int(answer[4]),
        avg_slot_s=float(answer[5]) if answer[5] else None,
        customers=standing,
        early=int(answer[6]),
    )


async def _positions_of_turn(
    on: tuple[aioredis.Redis, str, str], customers: list[str]
) -> list[LineView]:
    client, sale_id, store_id = on
    asked = list(dict.fromkeys(customers))
    view = await positions(client, sale_id=sale_id, store_id=store_id, customers=asked)
    return [view] * len(customers)


async def _entries_of_turn(
    on: tuple[aioredis.Redis, str], customers: list[str]
) -> list[str | None]:
    client, sale_id = on
    found = await client.hmget(keys.flash_entries(sale_id), customers)
    return [None if at is None else scripts.text(at) for at in found]


# a crowd's polls of one event-loop turn share one call for their entries and one per
# line for their places (each as fresh as its own: sent after all of them asked)
_turn_positions: TurnBatcher[tuple[aioredis.Redis, str, str], str, LineView] = TurnBatcher(
    _positions_of_turn, max_items=500, in_flight=1
)
_turn_entries: TurnBatcher[tuple[aioredis.Redis, str], str, str | None] = TurnBatcher(
    _entries_of_turn, max_items=500, in_flight=1
)


async def position(
    client: aioredis.Redis, *, sale_id: str, store_id: str, customer: str
) -> LineView:
    """``positions`` of one customer, asked with the turn's other askers of the line (the
    view names them too)."""
    return await _turn_positions.submit((client, sale_id, store_id), customer)


async def entry_of(client: aioredis.Redis, *, sale_id: str, customer: str) -> str | None:
    """The store whose line (or waiting room) the customer is in, if any."""
    return await _turn_entries.submit((client, sale_id), customer)


def wait_estimate(position: int, *, avg_slot_s: float | None, max_slots: int, slot_s: int) -> int:
    """Seconds until ``position`` (1 = next) gets a slot: the turns of the slots ahead of
    it, each lasting as long as slots have lately (half a slot before any ended)."""
    avg = avg_slot_s if avg_slot_s is not None else slot_s / 2
    turns = -(-position // max_slots)
    return max(1, round(turns * avg))


def within_reach(position: int, *, units_left: int, max_slots: int) -> bool:
    """Whether a unit could still come to ``position``: the units left, a quarter more for
    the payments that fail, and the slots. Further back only many failures ahead bring a
    turn, so such a customer is told less often (a poll every 2 minutes, a socket's
    position every ``hub.BEYOND_REACH_EVERY_S``)."""
    return position <= units_left * 5 // 4 + max_slots
