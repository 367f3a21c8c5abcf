"""Login and the caller's own profile."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.flash.ratelimit import client_ip
from server.identity import service
from server.identity.throttle import throttled_login
from server.kit.deps import ClockDep, CurrentUser, ResourcesDep, SessionDep, SettingsDep
from server.kit.openapi import problem_responses
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
