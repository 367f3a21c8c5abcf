"""Ending a user's sessions: logout (their own tokens) and disabling a staff account (a
manager or admin: no more logins, tokens refused at once, a rider taken off duty).

Both revoke in PostgreSQL first (``users.tokens_valid_after``: every request and every new
socket checks it, through the cached auth state, which the revocation replaces by a mark
in the same step: ``identity.service``), then, once committed, publish the user's id on the
sessions-ended channel so that every open socket of theirs, on any replica, is closed
(``kit.sockets.SocketGuardMiddleware``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import tracking
from server.identity import service
from server.identity.access import check_city_scope
from server.identity.models import User
from server.kit import keys
from server.kit.errors import Forbidden, NotFound
from server.kit.redis import publish
from shared.enums import Role

_STAFF = (Role.PICKER, Role.RIDER)


async def _city_of(session: AsyncSession, user: User) -> str | None:
    if user.city_id:
        return user.city_id
    row = await session.execute(
        text(
            "SELECT coalesce((SELECT city_id FROM riders WHERE rider_id = :u), "
            "(SELECT city_id FROM dark_stores WHERE store_id = :s))"
        ),
        {"u": user.id, "s": user.store_id},
    )
    city = row.scalar()
    return str(city) if city else None


@dataclass(frozen=True)
class Disabled:
    user: User
    rider_city: str | None  # a rider's city: their position leaves its GEO index


async def disable_account(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    actor: User,
    user_id: uuid.UUID,
    now: datetime,
    token_ttl_s: int,
) -> Disabled:
    """Admins disable anyone but themselves; a manager disables pickers and riders of
    their own city. A rider goes off duty (no more offers; a trip in hand stays theirs to
    be handed over by the manager)."""
    target = await session.get(User, user_id, with_for_update=True)
    if target is None:
        raise NotFound(f"no user {user_id}", code="user_not_found")
    if target.id == actor.id:
        raise Forbidden("you cannot disable yourself", code="not_yourself")
    city = await _city_of(session, target)
    if actor.role != Role.ADMIN:
        if target.role not in _STAFF:
            raise Forbidden("managers disable pickers and riders only", code="not_your_staff")
        check_city_scope(actor, city_id=city or "", what=f"user {target.login}")
    await service.disable_user(session, redis, user=target, now=now, token_ttl_s=token_ttl_s)
    if target.role == Role.RIDER:
        await session.execute(
            text(
                "UPDATE riders SET on_duty = false, "
                "status = CASE WHEN status = 'IDLE' THEN 'OFFLINE' ELSE status END "
                "WHERE rider_id = :u"
            ),
            {"u": target.id},
        )
        await session.execute(
            text(
                "UPDATE rider_shifts SET ended_at = :now WHERE rider_id = :u AND ended_at IS NULL"
            ),
            {"now": now, "u": target.id},
        )
        if city is not None:
            tracking.touched(session, [(city, target.id)])  # its fixes stop being taken
    return Disabled(target, city if target.role == Role.RIDER else None)


async def end_sessions(
    redis: aioredis.Redis, *, user_id: uuid.UUID, rider_city: str | None
) -> None:
    """After the commit: close every open socket of the user, on every replica, and take a
    disabled rider out of the city's GEO index (no store finds them near any more)."""
    if rider_city:
        await redis.zrem(keys.rider_geo(rider_city), str(user_id))
    await publish(redis, keys.sessions_ended(), str(user_id))
