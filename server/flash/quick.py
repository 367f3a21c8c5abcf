"""The line's hot routes (join, where am I) without FastAPI's generic machinery.

A crowd sends every customer's join at once; FastAPI's dependency solving (seven
dependencies), body check and response check were most of a join's CPU, and the two rate
limits were two Redis round trips one after the other. ``QueueRoute`` keeps each route as
declared (its OpenAPI, and FastAPI's handler for anything this does not read) and answers
the common request itself: a route's ``quick`` solver checks the path's sale id, the body
as declared (pydantic, the same model) and the bearer token (``deps.get_current_user``,
``CustomerUser``'s role), then counts both rate limits in the same event-loop turn (one
batched Redis call) and calls the endpoint; the answer is dumped by FastAPI's own
``serialize_response``. A request it does not read (a malformed id or body, no bearer
token, a query) goes to FastAPI's handler before anything is counted, so every 422 and
401 is FastAPI's; so does every request of an app with dependency overrides (tests).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute, serialize_response
from fastapi.security import HTTPAuthorizationCredentials

from server.identity.models import User
from server.kit.deps import get_current_user, require_roles
from server.kit.resources import Resources
from shared.enums import Role

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# a route's solver: the endpoint's keyword values, or None (FastAPI's handler answers)
Solver = Callable[[Request], Awaitable[dict[str, Any] | None]]

_customer_role = require_roles(Role.CUSTOMER)  # what CustomerUser runs


def quick(solver: Solver) -> Callable[[Any], Any]:
    """Mark an endpoint of a ``QueueRoute`` router as answered by ``solver`` when it can."""

    def mark(endpoint: Any) -> Any:
        endpoint.quick_solver = solver
        return endpoint

    return mark


def sale_id_of(request: Request) -> uuid.UUID | None:
    """The path's sale id in its canonical form (any other spelling is FastAPI's to read)."""
    raw = request.path_params.get("sale_id", "")
    try:
        value = uuid.UUID(raw)
    except ValueError:
        return None
    return value if len(raw) == 36 and str(value) == raw.lower() else None


def bearer_of(request: Request) -> HTTPAuthorizationCredentials | None:
    """``Authorization: Bearer <token>`` as HTTPBearer reads it; None for anything else."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


async def limited_customer(
    request: Request,
    resources: Resources,
    credentials: HTTPAuthorizationCredentials,
    *,
    limit: Callable[[User], Awaitable[Any]],
    per_address: Callable[[Request], Awaitable[None]] | None = None,
) -> User:
    """The token's customer under the route's ``limit``, refusals as FastAPI gives them:
    the per-address limit first (FastAPI solves route dependencies before the user), then
    401/403, then the customer's. The hits go to Redis together (one batched call), so a
    request the address limit refuses also counts for the customer."""
    try:
        user = await _customer_role(await get_current_user(resources, credentials))
    except Exception:
        if per_address is not None:
            await per_address(request)  # a 429 for the address comes before a 401
        raise
    # the address's hit as a task scheduled before the customer's: both join this turn's
    # batch; its refusal, if any, is the one given
    address = asyncio.ensure_future(per_address(request)) if per_address is not None else None
    try:
        await limit(user)
    except Exception:
        if address is not None:
            await address
        raise
    if address is not None:
        await address
    return user


class QueueRoute(APIRoute):
    """An ``APIRoute`` whose endpoint, if marked with ``quick``, is first offered to its
    solver (see above)."""

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        solve: Solver | None = getattr(self.endpoint, "quick_solver", None)
        if solve is None:
            return fastapi_handler
        endpoint, field, status_code = self.endpoint, self.response_field, self.status_code

        async def handler(request: Request) -> Response:
            overridden = getattr(request.scope["app"], "dependency_overrides", None)
            values = None if overridden else await solve(request)
            if values is None:
                return await fastapi_handler(request)
            values["response"] = sub = Response()
            del sub.headers["content-length"]
            content = await serialize_response(
                field=field, response_content=await endpoint(**values), dump_json=True
            )
            response = Response(
                content, status_code=status_code or 200, media_type="application/json"
            )
            response.headers.raw.extend(sub.headers.raw)
            return response

        return handler
