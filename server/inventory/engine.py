"""The Redis side of inventory: one Python function per Lua script.

Scripts run from the registry (``server.kit.scripts``: EVALSHA, reloaded transparently
after a Redis restart) and every key they touch is passed through ``KEYS`` with the ``{store}`` tag.
Each function turns the script's answer into a value or a domain error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import redis.asyncio as aioredis

from server.inventory.errors import (
    HoldChanged,
    HoldNotActive,
    InsufficientStock,
    StockBucketShort,
    StoreNotReady,
    UnknownSku,
    short_line,
)
from server.kit import keys, scripts
from server.kit.coalesce import TurnBatcher

TOMBSTONE_TTL_S = 24 * 3600
Outcome = Literal["COMMITTED", "RELEASED", "EXPIRED"]


# (named tuples: immutable as frozen dataclasses, and built in a fraction of their time,
# one of each per reservation)
class LineChange(NamedTuple):
    sku_id: str
    old_qty: int
    new_qty: int

    @property
    def delta(self) -> int:
        return self.new_qty - self.old_qty


class Reserved(NamedTuple):
    previous_state: str | None
    previous_expires_at: float | None
    lines: list[LineChange]
    pending: str = ""  # HARD: the hold's last journal id PostgreSQL may not hold yet
    epoch: str = ""  # the store's load the change was made on (see ``restore``)
    held: dict[str, int] | None = None  # the hold's lines after the change (None: unknown)

    @property
    def changed(self) -> bool:
        return any(line.new_qty != line.old_qty for line in self.lines)


class _Call(NamedTuple):
    """One holder's part of a reserve script call: its keys and arguments."""

    keys: list[str]
    args: list[Any]


async def _run_reserve(client: aioredis.Redis, store_id: str, mode: str, calls: list[_Call]) -> Any:
    """The reserve script for ``calls`` (holders of one store), one answer per call."""
    script_keys = [
        keys.store_ready(store_id),
        keys.hold_expiry(store_id),
        keys.inflight(store_id),
        keys.inventory_journal(store_id),
        keys.journal_applied(store_id),
    ]
    args: list[Any] = [mode]
    for call in calls:
        script_keys += call.keys
        args += call.args
    return await scripts.run(client, "inventory/reserve", keys=script_keys, args=args)


async def _send_soft(to: tuple[aioredis.Redis, str], calls: list[_Call]) -> Any:
    return await _run_reserve(to[0], to[1], "SOFT", calls)


# A client's SOFT calls for one store in one event-loop turn go as one script call (group
# commit: a cart's change pays a round trip and redis-py's per-command work once per turn).
# A fuller batch is sent as it is and a new one opened: 16, not one batch for the whole
# turn, so that Python answers one batch while Valkey runs the next (32 callers in one
# batch took turns with Valkey, each idle while the other worked: the engine over 5,000
# SKUs 8,051 -> 10,236 reservations/s, medians of three interleaved runs), and a script,
# which holds Valkey while it runs, stays short for everyone else's commands.
MAX_BATCH_HOLDERS = 16
_SOFT_BATCHES: TurnBatcher[tuple[aioredis.Redis, str], _Call, Any] = TurnBatcher(
    _send_soft, max_items=MAX_BATCH_HOLDERS
)


async def reserve(
    client: aioredis.Redis,
    *,
    store_id: str,
    holder: str,
    lines: dict[str, int],
    mode: Literal["SOFT", "HARD"],
    expires_at: float,
    now: float,
    new_holder: str | None = None,
    over: tuple[str, ...] = (),
    if_held: dict[str, int] | None = None,
) -> Reserved:
    """Set held quantities for ``holder`` (all lines or none); see ``lua/reserve.lua``.
    A SOFT change is journaled in the same step (no PostgreSQL write by the caller) and
    shares its script call with the store's other SOFT changes of this event-loop turn.
    A move (``new_holder``) must name the hold's lines as they are (else ``HoldChanged``);
    ``over``: the ended states (``MOVED``, ``RELEASED``) a change may start the hold over
    from, which otherwise refuse it. ``if_held`` (an undo): each line is set only while it
    holds that quantity still; a line changed since is left as it is, with the hold's
    expiry."""
    target = new_holder or holder
    skus = sorted(lines)
    hold = keys.hold(store_id, holder)
    call = _Call(
        [hold, hold if target == holder else keys.hold(store_id, target)],
        [holder, target, expires_at, now, ",".join(over), len(skus)],
    )
    for sku in skus:
        call.keys.append(keys.inventory(store_id, sku))
        wanted = lines[sku] if if_held is None else f"{lines[sku]}@{if_held[sku]}"
        call.args.extend((sku, wanted))
    if mode == "SOFT" and target == holder:
        answer = await _SOFT_BATCHES.submit((client, store_id), call)
    else:
        (answer,) = await _run_reserve(client, store_id, mode, [call])
    status = answer[0]
    if status == "OK":
        return Reserved(
            answer[1] or None,
            float(answer[2]) if answer[2] else None,
            [
                LineChange(answer[i], int(answer[i + 1]), int(answer[i + 2]))
                for i in range(6, len(answer), 3)
            ],
            answer[3],
            answer[4],
            _held(answer[5]),
        )
    if status == "SHORT":
        body = answer[1:]
        raise InsufficientStock(
            [
                short_line(body[i], int(body[i + 1]), int(body[i + 2]), int(body[i + 3]))
                for i in range(0, len(body), 4)
            ]
        )
    if status == "NOT_READY":
        raise StoreNotReady(f"stock of {store_id} is being loaded")
    if status == "UNKNOWN_SKU":
        raise UnknownSku(f"{answer[1]} is not stocked at {store_id}")
    if answer[1] == "STALE":
        raise HoldChanged(
            "the items held changed while they were being bought (a line was changed "
            "meanwhile): look at them again and retry"
        )
    raise HoldNotActive(f"hold {holder} is {answer[1]}", state=answer[1])


def _held(answer: str) -> dict[str, int]:
    """The hold's lines as ``reserve.lua`` answers them ("sku:qty;...")."""
    held = {}
    for line in answer.split(";") if answer else ():
        sku, _, qty = line.rpartition(":")
        held[sku] = int(qty)
    return held


@dataclass(frozen=True)
class Settled:
    status: Literal["OK", "NOOP", "NOT_DUE"]
    lines: dict[str, int]
    previous_state: str | None = None
    previous_expires_at: float | None = None
    epoch: str = ""

    @property
    def journaled(self) -> bool:
        """A SOFT hold's end: the batch writer records it, not the caller."""
        return self.status == "OK" and self.previous_state == "SOFT"


async def read_hold(client: aioredis.Redis, *, store_id: str, holder: str) -> dict[str, str]:
    return {
        scripts.text(k): scripts.text(v)
        for k, v in (await client.hgetall(keys.hold(store_id, holder))).items()
    }


async def settle(
    client: aioredis.Redis,
    *,
    store_id: str,
    holder: str,
    outcome: Outcome,
    now: float,
    attempts: int = 5,
    before_hard: Callable[[], Awaitable[None]] | None = None,
    hard_skus: list[str] | None = None,
) -> Settled:
    """Commit, release or expire a hold; ending an ended hold is a no-op.

    ``before_hard`` runs once before the script ends a HARD hold (whose end the caller
    writes to PostgreSQL): the caller takes its store lock there. ``hard_skus``: the
    HARD hold's SKUs as the caller made it, so the first try skips reading the hold (the
    script checks them; the hold is read if it changed)."""
    prepared = False
    for attempt in range(attempts):
        if attempt == 0 and hard_skus is not None:
            state, skus = "HARD", sorted(hard_skus)
        else:
            held = await read_hold(client, store_id=store_id, holder=holder)
            state = held.get("_state", "")
            skus = sorted(k for k in held if not k.startswith("_"))
        if state not in ("SOFT", "HARD"):
            return Settled("NOOP", {}, state or None)
        if state == "HARD" and before_hard is not None and not prepared:
            await before_hard()
            prepared = True
        script_keys = [
            keys.store_ready(store_id),
            keys.hold_expiry(store_id),
            keys.hold(store_id, holder),
            keys.inflight(store_id),
            keys.inventory_journal(store_id),
            *(keys.inventory(store_id, s) for s in skus),
        ]
        answer = [
            scripts.text(v)
            for v in await scripts.run(
                client,
                "inventory/settle",
                keys=script_keys,
                args=[outcome, holder, now, TOMBSTONE_TTL_S, state, *skus],
            )
        ]
        status = answer[0]
        if status == "OK":
            body = answer[3:]
            return Settled(
                "OK",
                {body[i]: int(body[i + 1]) for i in range(0, len(body), 2)},
                state,
                float(answer[2]) if answer[2] else None,
                epoch=answer[1],
            )
        if status == "NOOP":
            return Settled("NOOP", {}, answer[1] or None)
        if status == "NOT_DUE":
            return Settled("NOT_DUE", {})
        if status == "NOT_READY":
            raise StoreNotReady(f"stock of {store_id} is being loaded")
        # RETRY: the hold changed between our read and the script; read it again
    raise HoldNotActive(f"hold {holder} kept changing; try again", code="hold_busy")


async def leave(client: aioredis.Redis, *, store_id: str, holder: str) -> None:
    """The holder (a cart) left the store: an absent hold becomes a RELEASED tombstone
    (``lua/leave.lua``); a live one is ``settle``'s to end."""
    await scripts.run(
        client, "inventory/leave", keys=[keys.hold(store_id, holder)], args=[TOMBSTONE_TTL_S]
    )


@dataclass(frozen=True)
class Buckets:
    available: int
    reserved: int
    damaged: int
    in_transit: int


@dataclass(frozen=True)
class Adjusted:
    buckets: Buckets
    epoch: str


async def adjust(
    client: aioredis.Redis,
    *,
    store_id: str,
    sku_id: str,
    d_available: int = 0,
    d_reserved: int = 0,
    d_damaged: int = 0,
    d_in_transit: int = 0,
) -> Adjusted:
    script_keys = [
        keys.store_ready(store_id),
        keys.inventory(store_id, sku_id),
        keys.inflight(store_id),
    ]
    answer = [
        scripts.text(v)
        for v in await scripts.run(
            client,
            "inventory/adjust",
            keys=script_keys,
            args=[d_available, d_reserved, d_damaged, d_in_transit],
        )
    ]
    if answer[0] == "OK":
        return Adjusted(Buckets(*(int(v) for v in answer[1:5])), answer[5])
    if answer[0] == "NOT_READY":
        raise StoreNotReady(f"stock of {store_id} is being loaded")
    if answer[0] == "UNKNOWN_SKU":
        raise UnknownSku(f"{sku_id} is not stocked at {store_id}")
    raise StockBucketShort(
        f"only {answer[2]} {answer[1]} units of {sku_id}", bucket=answer[1], current=int(answer[2])
    )


async def read_buckets(
    client: aioredis.Redis, *, store_id: str, sku_ids: list[str]
) -> dict[str, Buckets | None]:
    pipe = client.pipeline(transaction=False)
    for sku in sku_ids:
        pipe.hmget(keys.inventory(store_id, sku), "available", "reserved", "damaged", "in_transit")
    out: dict[str, Buckets | None] = {}
    for sku, values in zip(sku_ids, await pipe.execute(), strict=True):
        out[sku] = None if values[0] is None else Buckets(*(int(v or 0) for v in values))
    return out


async def done_inflight(client: aioredis.Redis, *, store_id: str) -> None:
    """The PostgreSQL side of a Redis change finished (committed or compensated)."""
    await client.decr(keys.inflight(store_id))


@dataclass(frozen=True)
class RestoreLine:
    sku_id: str
    held_qty: int = 0
    d_available: int = 0
    d_reserved: int = 0
    d_damaged: int = 0
    d_in_transit: int = 0


async def restore(
    client: aioredis.Redis,
    *,
    store_id: str,
    lines: list[RestoreLine],
    holder: str | None = None,
    drop_holder: str | None = None,
    state: str | None = None,
    expires_at: float | None = None,
    epoch: str = "",
) -> str:
    """Undo a change whose PostgreSQL write failed; see ``lua/restore.lua``."""
    holder_key = keys.hold(store_id, holder) if holder else keys.hold_expiry(store_id)
    drop = drop_holder or holder or ""
    script_keys = [
        keys.store_ready(store_id),
        keys.hold_expiry(store_id),
        holder_key,
        keys.hold(store_id, drop) if drop else holder_key,
        *(keys.inventory(store_id, line.sku_id) for line in lines),
    ]
    args: list[Any] = [epoch, holder or "", drop, state or "", expires_at or 0]
    for line in lines:
        args += [
            line.sku_id,
            line.held_qty,
            line.d_available,
            line.d_reserved,
            line.d_damaged,
            line.d_in_transit,
        ]
    return scripts.text(await scripts.run(client, "inventory/restore", keys=script_keys, args=args))
