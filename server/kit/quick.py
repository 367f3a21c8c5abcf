"""Quick routes: a hot route's common request answered without FastAPI's generic machinery.

FastAPI checks a route's parameters, body and dependencies through ``solve_dependencies``
and an exit stack per request: most of a small route's CPU (a category page's list, a
flash join, a cart line). ``QuickRoute`` keeps each route as declared, so the OpenAPI
document comes from the same signature and FastAPI's own handler stays for anything the
quick path does not read. A request is offered to the route's solver first:

- a route marked ``@quick(solver)`` is solved by ``solver`` (the flash line, the cart
  and its checkout): it checks what it reads by hand (path values in canonical form, the
  body through the declared pydantic model, the bearer token) and returns the endpoint's
  keyword values; ``session=`` names the keyword that gets the request's unit of work,
  committed before the answer is sent, as ``SessionDep`` does;
- an unmarked route whose parameters are all ``Request`` and ``str``, ``str | None`` or
  ``int`` values annotated with ``Path``/``Query`` constraints (the catalogue's reads) is
  solved by checking those constraints; route dependencies taking the request alone (a
  per-address limit) run after the check, as FastAPI runs them.

A solver answers None for a request it does not read (a malformed value or body, no
bearer token, a repeated query key) before it counts or changes anything, and FastAPI's
handler answers it: every 422 and 401 is FastAPI's, word for word. So does every request
of an app with dependency overrides (tests). The answer is FastAPI's too: a ``Response``
as returned, anything else dumped by FastAPI's ``serialize_response`` against the
declared response model, with the route's status code and the headers the endpoint set
on its ``response`` parameter.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import types
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from urllib.parse import parse_qsl

import annotated_types
from fastapi import Request, Response
from fastapi import params as fastapi_params
from fastapi.routing import APIRoute, serialize_response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from server.identity.models import User
from server.kit.db import transaction
from server.kit.deps import get_current_user, require_roles
from server.kit.resources import Resources, resources_of
from shared.enums import Role

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# a route's solver: the endpoint's keyword values, or None (FastAPI's handler answers)
Solver = Callable[[Request], Awaitable[dict[str, Any] | None]]
M = TypeVar("M", bound=BaseModel)

_INVALID = object()
_MAX_DIGITS = 9  # a longer number is FastAPI's to read (and refuse)
_customer_role = require_roles(Role.CUSTOMER)  # what CustomerUser runs


def quick(solver: Solver, *, session: str | None = None) -> Callable[[Any], Any]:
    """Mark an endpoint of a ``QuickRoute`` router as answered by ``solver`` when it can;
    ``session``: the endpoint's keyword for the request's unit of work."""

    def mark(endpoint: Any) -> Any:
        endpoint.quick_solver, endpoint.quick_session = solver, session
        return endpoint

    return mark


# ---- what solvers read


def path_uuid(request: Request, name: str) -> uuid.UUID | None:
    """A path's UUID in its canonical form (any other spelling is FastAPI's to read)."""
    raw = request.path_params.get(name, "")
    try:
        value = uuid.UUID(raw)
    except ValueError:
        return None
    return value if len(raw) == 36 and str(value) == raw.lower() else None


async def json_body(request: Request, model: type[M]) -> M | None:
    """The JSON body as ``model`` (the route's declared one); None: FastAPI's to read."""
    if request.headers.get("content-type") != "application/json":
        return None
    try:
        return model.model_validate_json(await request.body())
    except ValidationError:
        return None


def path_check(annotation: Any) -> Callable[[str], Any]:
    """The check of a declared ``Path`` value (``Annotated[str, Path(...)]``): the value
    as the endpoint gets it, or None (FastAPI's to read)."""
    param = _param("value", annotation, inspect.Parameter.empty)
    assert param is not None, "a str or int Path with length, pattern or bounds"

    def check(raw: str) -> Any:
        value = param.value(raw)
        return None if value is _INVALID else value

    return check


def bearer_of(request: Request) -> HTTPAuthorizationCredentials | None:
    """``Authorization: Bearer <token>`` as HTTPBearer reads it; None for anything else."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


async def customer(resources: Resources, credentials: HTTPAuthorizationCredentials) -> User:
    """``CustomerUser``: the token's user, a customer (401/403 as FastAPI gives them)."""
    return await _customer_role(await get_current_user(resources, credentials))


async def limited_customer(
    request: Request,
    resources: Resources,
    credentials: HTTPAuthorizationCredentials,
    *,
    limit: Callable[[User], Awaitable[Any]],
    per_address: Callable[[Request], Awaitable[None]] | None = None,
    address_first: bool = True,
) -> User:
    """The token's customer under the route's ``limit``, refusals as FastAPI gives them.
    ``address_first``: the per-address limit is a route dependency (FastAPI solves it
    before the user: a 429 for the address comes before a 401); else it depends on the
    user (401/403 first). The hits go to Redis together (one batched call), so a request
    the address limit refuses also counts for the customer."""
    try:
        user = await customer(resources, credentials)
    except Exception:
        if per_address is not None and address_first:
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


# ---- declared parameters checked by hand (an unmarked route)


@dataclass(frozen=True)
class _Param:
    name: str  # the endpoint's keyword
    alias: str  # the name in the URL
    in_path: bool
    integer: bool
    default: Any  # PydanticUndefined: required
    min_length: int = 0
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    ge: int | None = None
    le: int | None = None

    def value(self, raw: str) -> Any:
        """``raw`` as the endpoint gets it, or ``_INVALID`` (FastAPI decides then)."""
        if self.integer:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_DIGITS):
                return _INVALID
            number = int(raw)
            if (self.ge is not None and number < self.ge) or (
                self.le is not None and number > self.le
            ):
                return _INVALID
            return number
        if len(raw) < self.min_length or (
            self.max_length is not None and len(raw) > self.max_length
        ):
            return _INVALID
        if self.pattern is not None and self.pattern.fullmatch(raw) is None:
            return _INVALID
        return raw


def _param(name: str, annotation: Any, default: Any) -> _Param | None:
    """The check of one declared parameter, or None for one it does not read."""
    if get_origin(annotation) is not Annotated:
        return None
    kind, *extras = get_args(annotation)
    info = next((e for e in extras if isinstance(e, fastapi_params.Param)), None)
    if not isinstance(info, fastapi_params.Path | fastapi_params.Query):
        return None
    optional = get_origin(kind) in (Union, types.UnionType) and set(get_args(kind)) == {
        str,
        type(None),
    }
    if kind not in (str, int) and not optional:
        return None
    found: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, annotated_types.MinLen):
            found["min_length"] = meta.min_length
        elif isinstance(meta, annotated_types.MaxLen):
            found["max_length"] = meta.max_length
        elif isinstance(meta, annotated_types.Ge):
            found["ge"] = meta.ge
        elif isinstance(meta, annotated_types.Le):
            found["le"] = meta.le
        elif getattr(meta, "pattern", None) is not None:
            found["pattern"] = re.compile(meta.pattern)
        else:
            return None
    if default is inspect.Parameter.empty:
        default = info.default
    return _Param(
        name,
        info.alias or name,
        isinstance(info, fastapi_params.Path),
        kind is int,
        default,
        **found,
    )


def _request_only(call: Callable[..., Any] | None) -> bool:
    """A dependency this route can call itself: ``async def f(request: Request)``."""
    if call is None or not inspect.iscoroutinefunction(call):
        return False
    parameters = list(inspect.signature(call, eval_str=True).parameters.values())
    return len(parameters) == 1 and parameters[0].annotation is Request


def _declared_solver(route: APIRoute) -> Solver | None:
    """The solver of a route declaring only what ``_param`` reads, or None."""
    request_name: str | None = None
    declared: list[_Param] = []
    for p in inspect.signature(route.endpoint, eval_str=True).parameters.values():
        param = None if p.annotation is Request else _param(p.name, p.annotation, p.default)
        if param is not None:
            declared.append(param)
        elif p.annotation is Request and request_name is None:
            request_name = p.name
        else:
            return None
    guards = [d.dependency for d in route.dependencies]
    if not all(_request_only(g) for g in guards):
        return None
    in_path = [p for p in declared if p.in_path]
    in_query = [p for p in declared if not p.in_path]

    def checked(request: Request) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        path_params = request.scope["path_params"]
        for p in in_path:
            value = p.value(path_params[p.alias])
            if value is _INVALID:
                return None
            values[p.name] = value
        query_string = request.scope["query_string"]
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        query = dict(pairs)
        if len(query) != len(pairs):  # a repeated key
            return None
        for p in in_query:
            raw = query.get(p.alias)
            if raw is None:
                if p.default is PydanticUndefined:
                    return None
                values[p.name] = p.default
                continue
            value = p.value(raw)
            if value is _INVALID:
                return None
            values[p.name] = value
        if request_name is not None:
            values[request_name] = request
        return values

    async def solve(request: Request) -> dict[str, Any] | None:
        values = checked(request)
        if values is not None:
            for guard in guards:
                await guard(request)  # type: ignore[misc]
        return values

    return solve


class QuickRoute(APIRoute):
    """An ``APIRoute`` whose common request is answered by its solver (see above)."""

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        endpoint = self.endpoint
        solve: Solver | None = getattr(endpoint, "quick_solver", None)
        session_name: str | None = getattr(endpoint, "quick_session", None)
        if solve is None:
            solve = _declared_solver(self)
        if solve is None:
            return fastapi_handler
        field, status_code = self.response_field, self.status_code or 200
        sub_response = "response" in inspect.signature(endpoint).parameters

        async def handler(request: Request) -> Response:
            overridden = getattr(request.scope["app"], "dependency_overrides", None)
            values = None if overridden else await solve(request)
            if values is None:
                return await fastapi_handler(request)
            sub = None
            if sub_response:
                values["response"] = sub = Response()
                del sub.headers["content-length"]
            if session_name is None:
                result = await endpoint(**values)
            else:  # committed before the answer is sent, as SessionDep's scope="function"
                async with transaction(resources_of(request.app).sessions) as session:
                    values[session_name] = session
                    result = await endpoint(**values)
            if isinstance(result, Response):
                return result
            content = await serialize_response(field=field, response_content=result, dump_json=True)
            response = Response(content, status_code=status_code, media_type="application/json")
            if sub is not None:
                response.headers.raw.extend(sub.headers.raw)
            return response

        return handler
