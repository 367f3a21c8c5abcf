"""Dark stores: listing and staff lookups."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.identity.models import User
from server.kit.errors import Forbidden, NotFound
from server.stores.models import DarkStore
from shared.enums import Role


async def list_stores(
    session: AsyncSession, *, city_id: str | None, limit: int, after: str | None
) -> list[DarkStore]:
    query = select(DarkStore).order_by(col(DarkStore.store_id)).limit(limit)
    if city_id:
        query = query.where(DarkStore.city_id == city_id)
    if after:
        query = query.where(col(DarkStore.store_id) > after)
    return list((await session.exec(query)).all())


async def get_store_for_manager(
    session: AsyncSession, *, store_id: str, manager: User
) -> DarkStore:
    """A store the manager may act on: their own city only (admins anywhere)."""
    store = await session.get(DarkStore, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    if manager.role != Role.ADMIN and store.city_id != manager.city_id:
        raise Forbidden(f"store {store_id} is not in your city", code="not_your_city")
    return store


async def list_store_staff(session: AsyncSession, *, store_id: str) -> list[User]:
    query = select(User).where(User.store_id == store_id, User.role == Role.PICKER)
    return list((await session.exec(query.order_by(col(User.login)))).all())


async def authorize_store(session: AsyncSession, *, store_id: str, user: User) -> DarkStore:
    """A store the staff member may work on: a picker's own store, a manager's city."""
    store = await session.get(DarkStore, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    if user.role == Role.ADMIN:
        return store
    if user.role == Role.MANAGER and store.city_id == user.city_id:
        return store
    if user.role == Role.PICKER and user.store_id == store_id:
        return store
    raise Forbidden(f"store {store_id} is not yours", code="not_your_store")
