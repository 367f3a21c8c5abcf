"""Fencing tokens: a write done under a background lease is refused once a newer holder
exists.

A lease (``lua/lease.lua``) hands its holder a token from ``INCR`` on the lease's fence
counter when it is taken: every new holder gets a larger one. While a leased loop runs for
a shard, its ``Fence`` (lease name, token) is the current one (a context variable, so every
task the run starts carries it too), and ``db.transaction`` calls ``check`` before it
commits: in the same transaction it moves the lease's row in ``loop_leases`` up to this
token, or finds a larger one there (or the same one written by another replica: a Redis
that lost its counter hands a token out twice) and raises ``Fenced``. The transaction then rolls back
(its Redis changes are compensated by the unit-of-work hooks), so a holder that stalled past
its lease (a long GC pause, a frozen VM, a slow disk) cannot overwrite what its successor
already wrote. The row lock orders the two: an old holder's transaction that commits first
is simply ordered before the new holder's first write.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from sqlalchemy import BigInteger, text
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit.columns import Timestamp, tz_field


class LoopLease(SQLModel, table=True):
    """The newest fencing token that wrote under each background lease. Keyed by store
    first ('' for a loop that is once per cluster), so on Citus the check is a write to the
    shard of the store the run writes to: the transaction stays on one shard."""

    __tablename__ = "loop_leases"

    store_id: str = Field(primary_key=True, max_length=20)
    name: str = Field(primary_key=True, max_length=200)
    token: int = Field(sa_type=BigInteger)
    holder: str = Field(max_length=40)  # the replica that wrote with it
    updated_at: Timestamp = tz_field(server_now=True)


@dataclass(frozen=True)
class Fence:
    name: str  # the lease, e.g. "inventory-sweeper:<store_id>"
    token: int
    holder: str  # the replica (lease owner id)
    store_id: str = ""  # the store of a per-store lease


class Fenced(RuntimeError):
    """A newer holder of the lease has written: this holder's write is refused."""

    def __init__(self, fence: Fence, newest: int) -> None:
        why = (
            f"was superseded by a newer holder's {newest}"
            if newest > fence.token
            else "was already written by another holder (the lease counter started again)"
        )
        super().__init__(f"lease {fence.name}: token {fence.token} {why}")
        self.fence, self.newest = fence, newest


_current: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("fence", default=None)


def current() -> Fence | None:
    return _current.get()


def enter(fence: Fence | None) -> contextvars.Token[Fence | None]:
    return _current.set(fence)


def leave(token: contextvars.Token[Fence | None]) -> None:
    _current.reset(token)


async def check(session: AsyncSession, fence: Fence | None = None) -> None:
    """Record ``fence`` (default: the current one) as the lease's newest writer in this
    transaction, or raise ``Fenced`` if a newer token already wrote. Outside a leased
    run there is no fence and nothing to check."""
    fence = fence or current()
    if fence is None:
        return
    row = (
        await session.execute(
            text(
                "INSERT INTO loop_leases (store_id, name, token, holder, updated_at) "
                "VALUES (:store, :name, :token, :holder, now()) "
                "ON CONFLICT (store_id, name) DO UPDATE "
                "SET token = excluded.token, holder = excluded.holder, updated_at = now() "
                "WHERE loop_leases.token < excluded.token OR (loop_leases.token = "
                "excluded.token AND loop_leases.holder = excluded.holder) RETURNING token"
            ),
            {
                "store": fence.store_id,
                "name": fence.name,
                "token": fence.token,
                "holder": fence.holder,
            },
        )
    ).first()
    if row is None:
        newest = (
            await session.execute(
                text("SELECT token FROM loop_leases WHERE store_id = :store AND name = :name"),
                {"store": fence.store_id, "name": fence.name},
            )
        ).scalar_one()
        raise Fenced(fence, int(newest))
