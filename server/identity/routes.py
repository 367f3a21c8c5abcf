"""Login and the caller's own profile."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from server.identity import flows, service
from server.identity.throttle import throttled_login
from server.kit.db import transaction
from server.kit.deps import (
    ClockDep,
    CurrentUser,
    ManagerUser,
    ResourcesDep,
    SessionDep,
    SettingsDep,
)
from server.kit.openapi import problem_responses
from server.kit.ratelimit import client_ip
from shared.schemas.identity import LoginRequest, TokenResponse, UserPublic

router = APIRouter(prefix="/v1", tags=["identity"])


@router.post(
    "/auth/login",
    summary="Log in with a password or staff PIN",
    responses=problem_responses(401, 422, 429),
)
async def login(
    body: LoginRequest,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    resources: ResourcesDep,
) -> TokenResponse:
    user = await throttled_login(
        resources.rate_limiter,
        settings,
        login=body.login,
        address=client_ip(request),
        authenticate=lambda: service.authenticate(session, login=body.login, secret=body.secret),
    )
    token, expires = service.issue_token(
        user, key=settings.secret_key_value(), now=clock.now(), ttl_s=settings.token_ttl_s
    )
    return TokenResponse(
        access_token=token, expires_at=expires, user=UserPublic.model_validate(user)
    )


@router.get("/me", summary="The logged-in user", responses=problem_responses(401))
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post(
    "/auth/logout",
    summary="Log out everywhere: every token of yours stops working, open sockets close",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
)
async def logout(user: CurrentUser, resources: ResourcesDep) -> Response:
    async with transaction(resources.sessions) as session:
        await service.revoke_tokens(
            session,
            resources.redis,
            user_id=user.id,
            now=resources.clock.now(),
            token_ttl_s=resources.settings.token_ttl_s,
        )
    await flows.end_sessions(resources.redis, user_id=user.id, rider_city=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/disable",
    summary="Disable a staff account: no logins, its tokens refused, sockets closed, a "
    "rider off duty (managers: pickers and riders of their city)",
    responses=problem_responses(401, 403, 404),
)
async def disable_user(
    user_id: uuid.UUID, actor: ManagerUser, resources: ResourcesDep
) -> UserPublic:
    async with transaction(resources.sessions) as session:
        disabled = await flows.disable_account(
            session,
            resources.redis,
            actor=actor,
            user_id=user_id,
            now=resources.clock.now(),
            token_ttl_s=resources.settings.token_ttl_s,
        )
        answer = UserPublic.model_validate(disabled.user)
    await flows.end_sessions(resources.redis, user_id=user_id, rider_city=disabled.rider_city)
    return answer
