"""Security headers on every answer (a cheap ASGI middleware)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS = {
    "X-Content-Type-Options": "nosniff",  # a JSON answer is never sniffed into HTML
    "X-Frame-Options": "DENY",  # no page of ours inside someone else's frame
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    """The headers above on every HTTP answer; ``Cache-Control: no-store`` on answers to
    requests that carry a token, and on logins (the answer is a token), unless the route
    chose its own caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith("/v1/auth/") or any(
            name == b"authorization" for name, _ in scope["headers"]
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _ALWAYS.items():
                    headers.setdefault(name, value)
                if private:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
