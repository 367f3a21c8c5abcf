"""Dark stores: listing and staff lookups."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.identity.access import check_store_scope
from server.identity.models import User
from server.kit.errors import NotFound
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
    return await authorize_store(session, store_id=store_id, user=manager)


async def list_store_staff(session: AsyncSession, *, store_id: str) -> list[User]:
    query = select(User).where(User.store_id == store_id, User.role == Role.PICKER)
    return list((await session.exec(query.order_by(col(User.login)))).all())


async def authorize_store(session: AsyncSession, *, store_id: str, user: User) -> DarkStore:
    """A store the staff member may work on (the scope rule of ``identity.access``)."""
    store = await session.get(DarkStore, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    check_store_scope(user, store_id=store_id, city_id=store.city_id)
    return store
