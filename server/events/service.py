"""The outbox: an event is a row written in the same transaction as the change it tells.

A higher domain reacts to a lower one's events without the lower importing it: it
registers a handler for a topic (``handles``), and ``emit`` runs the handler inside the
emitting transaction, so what the handler writes commits or rolls back with the change.
The control tower's alerts arrive this way (``alert.<kind>`` topics, handled in ops).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.enums import AlertKind

_INSERT = text("""
    INSERT INTO outbox (topic, store_id, aggregate_id, payload, created_at)
    VALUES (:topic, :store, :aggregate, :payload, :now)""").bindparams(
    bindparam("payload", type_=JSONB)
)


def outbox_insert(after: str, *, merged: str = "'{}'::jsonb") -> str:
    """SQL writing a change's outbox row in the change's own statement (then ``dispatch``
    the event): one row per row of the CTE ``after``, from ``:topic``, ``:store``,
    ``:aggregate``, ``:payload`` (JSON text) with ``merged`` (a jsonb expression over
    ``after``) merged in and ``:now``; it returns the payload as written."""
    return f"""
    INSERT INTO outbox (topic, store_id, aggregate_id, payload, created_at)
    SELECT :topic, :store, :aggregate, CAST(:payload AS jsonb) || {merged}, :now
    FROM {after}
    RETURNING payload"""


@dataclass(frozen=True)
class Event:
    topic: str
    payload: dict[str, Any]
    now: datetime
    store_id: str
    aggregate_id: str | None


Handler = Callable[[AsyncSession, Event], Awaitable[None]]
_handlers: dict[str, list[Handler]] = {}


def handles(topic: str) -> Callable[[Handler], Handler]:
    """Decorator: run the handler in the transaction of every event with this topic."""

    def register(handler: Handler) -> Handler:
        registered = _handlers.setdefault(topic, [])
        if handler not in registered:
            registered.append(handler)
        return handler

    return register


def alert_topic(kind: AlertKind) -> str:
    """The topic of an event that calls for a manager's attention."""
    return f"alert.{kind.value}"


async def emit(
    session: AsyncSession,
    *,
    topic: str,
    payload: dict[str, Any],
    now: datetime,
    store_id: str,
    aggregate_id: str | None = None,
) -> None:
    await session.execute(
        _INSERT,
        {
            "topic": topic,
            "store": store_id,
            "aggregate": aggregate_id,
            "payload": payload,
            "now": now,
        },
    )
    await dispatch(session, Event(topic, payload, now, store_id, aggregate_id))


async def dispatch(session: AsyncSession, event: Event) -> None:
    """Run the topic's handlers for an event whose outbox row the caller wrote itself (in
    the statement of the change it tells: one round trip)."""
    for handler in _handlers.get(event.topic, ()):
        await handler(session, event)
