"""Shapes every API answer shares: problems (errors), pages, the health check."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Problem(BaseModel):
    """RFC 9457 problem details plus a stable machine ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


class Page(BaseModel, Generic[T]):
    """A page of a cursor-paged list: pass ``next_cursor`` back as ``cursor``."""

    items: list[T]
    next_cursor: str | None = None


class ServiceCheck(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: str  # "ok" or "degraded"
    postgres: ServiceCheck
    redis: ServiceCheck
    migration: ServiceCheck
