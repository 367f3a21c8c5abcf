"""Unit-of-work hooks: what to do once a session's transaction commits or rolls back.

Inventory changes Redis first (the gate) and PostgreSQL second, in the request's
transaction. A service registers the compensation of its Redis change with
``on_rollback`` and its bookkeeping with ``after_commit``; whoever owns the transaction
(the request dependency, ``db.transaction``) calls ``finish``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
# a flush listener has the sync session: both share ``info``, where the hooks wait
AnySession = AsyncSession | Session


def _hooks(session: AnySession, kind: str) -> list[Hook]:
    return session.info.setdefault(kind, [])


def after_commit(session: AnySession, hook: Hook) -> None:
    _hooks(session, "qc_after_commit").append(hook)


def on_rollback(session: AnySession, hook: Hook) -> None:
    _hooks(session, "qc_on_rollback").append(hook)


def after_either(session: AnySession, hook: Hook) -> None:
    after_commit(session, hook)
    on_rollback(session, hook)


async def finish(session: AsyncSession, *, committed: bool) -> None:
    """Run the hooks of the outcome (compensations newest first) and forget both lists."""
    hooks = session.info.pop("qc_after_commit" if committed else "qc_on_rollback", [])
    session.info.pop("qc_on_rollback" if committed else "qc_after_commit", None)
    for hook in reversed(hooks) if not committed else hooks:
        try:
            await hook()
        except Exception:
            # the reconciler repairs whatever a failed hook leaves behind
            log.exception("unit-of-work hook failed")


def idle(session: AsyncSession) -> bool:
    """No transaction began and nothing waits to be flushed: committing or rolling back
    has nothing to do, and skipping it saves a greenlet round trip (~30-60 µs) for the
    units of work that stayed in Redis (a cart's soft hold, a fix, a flash join)."""
    sync = session.sync_session
    if sync.in_transaction() or sync.new:
        return False
    # dirty or deleted objects are in the identity map: an empty one spares building both
    # sets (a few µs, twice per unit of work)
    return not sync.identity_map or not (sync.dirty or sync.deleted)


async def commit(session: AsyncSession) -> None:
    if not idle(session):
        try:
            await session.commit()
        except BaseException:
            await session.rollback()
            await finish(session, committed=False)
            raise
    await finish(session, committed=True)


async def rollback(session: AsyncSession) -> None:
    if not idle(session):
        await session.rollback()
    await finish(session, committed=False)
