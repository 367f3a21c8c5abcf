"""Login and the caller's own profile."""

from __future__ import annotations

from fastapi import APIRouter

from server.identity import service
from server.kit.deps import ClockDep, CurrentUser, SessionDep, SettingsDep
from server.kit.openapi import problem_responses
from shared.schemas.identity import LoginRequest, TokenResponse, UserPublic

router = APIRouter(prefix="/v1", tags=["identity"])


@router.post(
    "/auth/login",
    summary="Log in with a password or staff PIN",
    responses=problem_responses(401, 422),
)
async def login(
    body: LoginRequest, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> TokenResponse:
    user = await service.authenticate(session, login=body.login, secret=body.secret)
    token, expires = service.issue_token(
        user, key=settings.secret_key_value(), now=clock.now(), ttl_s=settings.token_ttl_s
    )
    return TokenResponse(
        access_token=token, expires_at=expires, user=UserPublic.model_validate(user)
    )


@router.get("/me", summary="The logged-in user", responses=problem_responses(401))
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
