"""Users, roles and credentials."""

from __future__ import annotations

import uuid

from sqlmodel import Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field
from shared.enums import Role


class UserBase(SQLModel):
    login: str = Field(max_length=80, unique=True, index=True)
    name: str = Field(max_length=120)
    role: Role = enum_field(max_length=20)
    phone: str | None = Field(default=None, max_length=20)
    store_id: str | None = Field(default=None, foreign_key="dark_stores.store_id", max_length=20)
    city_id: str | None = Field(default=None, foreign_key="cities.city_id", max_length=10)


class User(UserBase, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    secret_hash: str = Field(max_length=200)
    is_active: bool = True
    # tokens issued before this are refused (logout, disable); None: none revoked
    tokens_valid_after: Timestamp = tz_field()
    created_at: Timestamp = tz_field(server_now=True)
