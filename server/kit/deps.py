"""Typed dependencies: the app's resources, the session unit of work, Redis, the clock,
the current user.

Every dependency is ``async def``, even where nothing is awaited: FastAPI runs a plain
``def`` dependency on its thread pool, a thread hop per dependency per request (a cart
request solved ~6 of them: most of its dependency CPU)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from server.identity import service as identity
from server.identity.models import User
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from server.kit.errors import Forbidden, Unauthorized
from server.kit.resources import Resources, resources_of
from shared.enums import Role


async def get_resources(request: Request) -> Resources:
    return resources_of(request.app)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back on error."""
    async with transaction(resources.sessions) as session:
        yield session


async def get_redis(resources: ResourcesDep) -> aioredis.Redis:
    return resources.redis


async def get_clock(resources: ResourcesDep) -> Clock:
    return resources.clock


async def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


# scope="function": commit before the response is sent, so a client never reads its own
# write before it is committed, and a failed commit is an error answer, not a lost write
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False)


async def get_current_user(
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The token's user from the cached auth state (PostgreSQL on a miss, in its own
    transaction ended before the handler runs: a handler running its own transactions,
    like checkout, never holds two connections at once)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    claims = identity.decode_token(
        credentials.credentials,
        key=resources.settings.secret_key_value(),
        now=resources.clock.now(),
    )
    return await identity.current_user(resources.redis, resources.sessions, claims=claims)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    allowed = frozenset(roles) | {Role.ADMIN}

    async def guard(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(allowed))}")
        return user

    return guard


CustomerUser = Annotated[User, Depends(require_roles(Role.CUSTOMER))]
PickerUser = Annotated[User, Depends(require_roles(Role.PICKER, Role.MANAGER))]
RiderUser = Annotated[User, Depends(require_roles(Role.RIDER))]
ManagerUser = Annotated[User, Depends(require_roles(Role.MANAGER))]
StaffUser = Annotated[User, Depends(require_roles(Role.PICKER, Role.RIDER, Role.MANAGER))]
