"""What the picker's and the rider's stand-in APIs share: every call recorded, the server
lost on demand, a PIN login for one account, health and close."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.client import ApiError, ConnectionLost
from shared.schemas.common import Health, ServiceCheck
from shared.schemas.identity import TokenResponse, UserPublic


class FakeApi:
    """Answers like the server, from memory. ``offline`` makes every call fail with
    ConnectionLost; ``calls`` records (method, arg) for the assertions. A subclass names
    its ``ACCOUNT``, the ``PIN`` that logs it in and the server's ``NOW``."""

    base_url = "http://fake.test"
    ACCOUNT: UserPublic
    PIN: str
    NOW: datetime

    def __init__(self, *, logged_in: bool = True) -> None:
        self.token: str | None = "t" if logged_in else None
        self.user: UserPublic | None = self.ACCOUNT if logged_in else None
        self.offline = False
        self.calls: list[tuple[str, object]] = []

    def _call(self, name: str, arg: object = None) -> None:
        self.calls.append((name, arg))
        if self.offline:
            raise ConnectionLost("ConnectError: [Errno 111] Connection refused")

    def called(self, name: str) -> list[object]:
        """The args of every call to ``name``, in order."""
        return [arg for n, arg in self.calls if n == name]

    async def login(self, login: str, secret: str) -> TokenResponse:
        self._call("login", login)
        if secret != self.PIN:
            raise ApiError(401, "invalid_credentials", "wrong login or secret")
        self.token, self.user = "t", self.ACCOUNT
        expires = self.NOW + timedelta(hours=8)
        return TokenResponse(access_token="t", expires_at=expires, user=self.ACCOUNT)

    async def health(self) -> Health:
        self._call("health")
        ok = ServiceCheck(ok=True)
        return Health(status="ok", postgres=ok, redis=ok, migration=ok)

    async def aclose(self) -> None:
        self.calls.append(("aclose", None))
