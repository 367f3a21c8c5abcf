"""What every websocket endpoint shares: admitting the caller, and relaying a Redis channel.

``accept`` is the one door of every socket: accept, bearer token, active user, role, then
the route's own checks; a refusal is an ``error`` message and a close code (4401 not
authenticated, 4403 forbidden, otherwise the route's code, 4404 unless it says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any, TypeVar, overload

from fastapi import WebSocket, WebSocketDisconnect
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.identity import service as identity
from server.identity.models import User
from server.kit import keys
from server.kit.errors import DomainError, Unauthorized
from server.kit.fanout import Fanout
from server.kit.resources import Resources, resources_of
from shared.enums import Role

CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404
CLOSE_TOO_MANY = 4429
CLOSE_TRY_AGAIN = 1013  # RFC 6455: try again later


class TooManySockets(DomainError):
    status, code, title = 429, "too_many_sockets", "Too many open sockets"


T = TypeVar("T")


def _bearer(headers: Headers, query: QueryParams) -> str | None:
    """The bearer token (``Authorization`` header, or ``?token=`` since browsers cannot set
    headers on a websocket)."""
    header = headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else query.get("token")


def _caller(websocket: WebSocket) -> identity.TokenClaims:
    token = _bearer(websocket.headers, websocket.query_params)
    if not token:
        raise Unauthorized("a bearer token is required")
    resources = resources_of(websocket.app)
    return identity.decode_token(
        token, key=resources.settings.secret_key_value(), now=resources.clock.now()
    )


@overload
async def accept(
    websocket: WebSocket,
    *,
    roles: Collection[Role],
    wrong_role: Callable[[], DomainError],
    otherwise: int = CLOSE_NOT_FOUND,
) -> User | None: ...


@overload
async def accept(
    websocket: WebSocket,
    *,
    roles: Collection[Role],
    wrong_role: Callable[[], DomainError],
    admit: Callable[[User], Awaitable[T]],
    otherwise: int = CLOSE_NOT_FOUND,
) -> tuple[User, T] | None: ...


async def accept(
    websocket: WebSocket,
    *,
    roles: Collection[Role],
    wrong_role: Callable[[], DomainError],
    admit: Callable[[User], Awaitable[T]] | None = None,
    otherwise: int = CLOSE_NOT_FOUND,
) -> User | tuple[User, T] | None:
    """Accept the socket and admit its caller: an active user in one of ``roles`` (else
    ``wrong_role()`` is the refusal), then the route's ``admit(user)`` (whose answer is
    returned beside the user). ``None``: the caller was refused and the socket is closed,
    with 4401, 4403 or ``otherwise`` for any other refusal."""
    await websocket.accept()
    try:
        claims = _caller(websocket)
        resources = resources_of(websocket.app)
        # the cached auth state, as an HTTP request's: a crowd's sockets do not each hold a
        # pooled connection for a user read (a pool of 4 left handshakes waiting 30 s)
        user = await identity.current_user(resources.redis, resources.sessions, claims=claims)
        if user.role not in roles:
            raise wrong_role()
        if admit is None:
            return user
        return user, await admit(user)
    except DomainError as exc:
        await websocket.send_json({"type": "error", "error": exc.problem()})
        code = {401: CLOSE_UNAUTHENTICATED, 403: CLOSE_FORBIDDEN}.get(exc.status, otherwise)
        await websocket.close(code=code)
        return None


class AfterSnapshot:
    """Holds a channel's events until the socket's snapshot is out, then lets through only
    what the client does not have yet: an event carrying a ``sequence`` must be newer than the
    snapshot's and than every one let through before it (the relay may deliver events older
    than the subscription, and relays on two replicas may deliver out of order). Events
    without a sequence (a rider's position) always pass once the snapshot is out."""

    def __init__(self) -> None:
        self._sent = asyncio.Event()
        self._latest = 0

    def snapshot_sent(self, sequence: int) -> None:
        self._latest = sequence
        self._sent.set()

    async def admits(self, payload: dict[str, Any]) -> bool:
        await self._sent.wait()
        sequence = payload.get("sequence")
        if sequence is None:
            return True
        if sequence <= self._latest:
            return False
        self._latest = sequence
        return True


@asynccontextmanager
async def relaying(
    websocket: WebSocket, channel: str, *, gate: AfterSnapshot | None = None
) -> AsyncIterator[None]:
    """Subscribe to shard channel ``channel`` (through the process's one subscriber) and
    forward its events to the socket as ``{"type": topic, **payload}`` while the block runs,
    through ``gate`` if given. Subscribing happens on entry, so a snapshot sent inside the
    block misses nothing."""
    async with resources_of(websocket.app).fanout.subscribe(channel) as messages:

        async def forward() -> None:
            async for data in messages:
                event = json.loads(data)
                if gate is None or await gate.admits(event["payload"]):
                    await websocket.send_json({"type": event["topic"], **event["payload"]})
            # the fan-out cut this socket off (too far behind): the client reconnects and
            # starts again from a snapshot
            await websocket.close(code=CLOSE_TRY_AGAIN)

        task = asyncio.create_task(forward())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


class SocketGuardMiddleware:
    """Every websocket, whatever its route: at most ``ws_max_per_user`` open at once per
    user in this process (more are refused with 4429, so one client cannot hold every
    socket), and closed with 4401 when its token expires or the user's sessions end
    (logout, disable: their id on ``keys.sessions_ended``). A socket without a valid token
    passes through: ``accept`` refuses it with the route's answer.

    The route runs in the socket's own task, which an end cancels: one listener per
    process for every user's ended sessions and one timer per socket for its token, where
    a subscription of its own, two tasks and a wait every ~15 s were ~550 µs of a socket's
    ~1.8 ms handshake and a third of an idle socket's CPU (a flash crowd holds 5,000)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open: Counter[uuid.UUID] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        resources = resources_of(scope["app"])
        token = _bearer(Headers(scope=scope), QueryParams(scope["query_string"]))
        try:
            claims = identity.decode_token(
                token or "", key=resources.settings.secret_key_value(), now=resources.clock.now()
            )
        except Unauthorized:
            await self.app(scope, receive, send)
            return
        user = claims.user_id
        if self.open[user] >= resources.settings.ws_max_per_user:
            await _refuse_busy(receive, send, resources.settings.ws_max_per_user)
            return
        self.open[user] += 1
        try:
            await self._guarded(scope, receive, send, resources, claims)
        finally:
            self.open[user] -= 1
            if not self.open[user]:
                del self.open[user]

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        resources: Resources,
        claims: identity.TokenClaims,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        closed = ended = running = False

        async def tracked_send(message: Message) -> None:
            nonlocal closed
            closed = closed or message["type"] == "websocket.close"
            await send(message)

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                if running:  # only ever inside the route, never after it
                    task.cancel()

        clock, loop = resources.clock, asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def check_expiry() -> None:
            nonlocal timer
            left = claims.expires_at - clock.timestamp()
            if left <= 0:
                end()
                return
            wait = min(clock.real_seconds(left), resources.settings.ws_recheck_s)
            timer = loop.call_later(wait, check_expiry)

        # listening for the user's ended sessions before the route can accept: a logout
        # or disable answered right after the handshake is heard (published after its
        # commit), and one committed before this point is refused by the route's check
        async with resources.session_ends.watching(claims.user_id, end):
            if ended:  # heard before the route began (its listener stopped meanwhile)
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})
                return
            running = True
            check_expiry()
            try:
                await self.app(scope, receive, tracked_send)
            except asyncio.CancelledError:
                if not ended:
                    raise  # the server's own cancellation
            finally:
                running = False
                if timer is not None:
                    timer.cancel()
                if ended and task.cancelling():
                    task.uncancel()  # ours, taken back: the task goes on
            if ended and not closed:
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})


class SessionEnds:
    """A process's one listener for ended sessions (logout, disable): each message on
    ``keys.sessions_ended`` names a user, and their sockets here are told. Started by the
    first socket; when it stops hearing (Redis lost, its inbox overflowed) it tells every
    socket watching: one that may have missed an end closes, and its client comes back
    through the connect check. The next socket starts it again."""

    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.watchers: dict[uuid.UUID, set[Callable[[], None]]] = {}
        self.listening: asyncio.Future[None] | None = None  # done once subscribed
        self.task: asyncio.Task[None] | None = None  # the listener (held: not collected)

    @asynccontextmanager
    async def watching(self, user: uuid.UUID, on_end: Callable[[], None]) -> AsyncIterator[None]:
        """``on_end()`` is called if the user's sessions end while the block runs (from its
        start: the subscription is confirmed first)."""
        mine = self.watchers.setdefault(user, set())
        mine.add(on_end)
        try:
            if self.listening is None:
                self.listening = asyncio.get_running_loop().create_future()
                self.task = asyncio.create_task(self._listen(self.listening), name="session-ends")
            await asyncio.shield(self.listening)
            yield
        finally:
            mine.discard(on_end)
            if not mine and self.watchers.get(user) is mine:
                del self.watchers[user]

    async def aclose(self) -> None:
        """Stop the listener (the app's shutdown; its watchers are told): a task still
        pending when the event loop closes is destroyed inside its subscription, which
        cannot be left then ("coroutine ignored GeneratorExit")."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _listen(self, listening: asyncio.Future[None]) -> None:
        try:
            async with self.fanout.subscribe(keys.sessions_ended()) as messages:
                listening.set_result(None)
                async for data in messages:
                    with contextlib.suppress(ValueError):
                        for on_end in list(self.watchers.get(uuid.UUID(data), ())):
                            on_end()
        except Exception as exc:
            if not listening.done():
                listening.set_exception(exc)
        finally:
            if not listening.done():
                listening.cancel()
            if self.listening is listening:
                self.listening = None
            for watchers in list(self.watchers.values()):
                for on_end in list(watchers):
                    on_end()


async def _refuse_busy(receive: Receive, send: Send, cap: int) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    problem = TooManySockets(f"at most {cap} open sockets per user").problem()
    await send({"type": "websocket.send", "text": json.dumps({"type": "error", "error": problem})})
    await send({"type": "websocket.close", "code": CLOSE_TOO_MANY})
