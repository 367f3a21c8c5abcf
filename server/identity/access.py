"""Who may work on which store: the one scope rule every staff route goes through."""

from __future__ import annotations

from server.identity.models import User
from server.kit.errors import Forbidden
from shared.enums import Role


def check_city_scope(user: User, *, city_id: str, what: str) -> None:
    """Admins anywhere, a manager in their own city (``what`` names the thing refused)."""
    if user.role != Role.ADMIN and user.city_id != city_id:
        raise Forbidden(f"{what} is not yours", code="not_your_city")


def check_store_scope(user: User, *, store_id: str, city_id: str) -> None:
    """Admins anywhere, a manager in their own city, a picker or rider in their own store."""
    if user.role in (Role.ADMIN, Role.MANAGER):
        check_city_scope(user, city_id=city_id, what=f"store {store_id}")
        return
    if user.role in (Role.PICKER, Role.RIDER) and user.store_id == store_id:
        return
    raise Forbidden(f"store {store_id} is not yours", code="not_your_store")
