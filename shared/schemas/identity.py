"""Signing in and who is signed in."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.enums import Role


class LoginRequest(BaseModel):
    login: str = Field(min_length=1, max_length=80, examples=["picker.koramangala.1"])
    secret: str = Field(
        min_length=1, max_length=128, description="Password or staff PIN", examples=["1111"]
    )


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    login: str
    name: str
    role: Role
    store_id: str | None = None
    city_id: str | None = None
    is_active: bool = True


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic
