"""Login throttling against PIN guessing: per account and per client address.

An account takes ``login_attempts_per_account`` attempts in a moving window (a right
secret clears its count); past that it is locked out, right secret included, until the
window frees a slot. A client address takes ``login_failures_per_address`` failed logins,
whatever accounts they name. Both answer 429 with ``Retry-After``, and every refused
login is logged (the audit trail of guessing). The counts live in Redis (the ``limits``
moving window), so every replica sees the same ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter

from server.identity.models import User
from server.kit import keys
from server.kit.config import Settings
from server.kit.errors import Unauthorized
from server.kit.ratelimit import RateLimited

log = logging.getLogger("server.identity.login")

_ACCOUNT = keys.rate_limit_scope("login-account")
_ADDRESS = keys.rate_limit_scope("login-address")


class LoginThrottled(RateLimited):
    code, title = "login_throttled", "Too many login attempts"


async def _refuse(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, scope: str, who: str, what: str
) -> None:
    stats = await limiter.get_window_stats(item, scope, who)
    retry = max(1, math.ceil(stats.reset_time - time.time()))
    raise LoginThrottled(
        f"too many login attempts {what}; try again in {retry} s", retry_after_s=retry
    )


async def throttled_login(
    limiter: MovingWindowRateLimiter,
    settings: Settings,
    *,
    login: str,
    address: str,
    authenticate: Callable[[], Awaitable[User]],
) -> User:
    """``authenticate()`` unless the address or the account is over its limit (429)."""
    per_account = parse(settings.login_attempts_per_account)
    per_address = parse(settings.login_failures_per_address)
    if not await limiter.test(per_address, _ADDRESS, address):
        log.warning("login refused: address throttled", extra={"login": login, "client": address})
        await _refuse(limiter, per_address, _ADDRESS, address, "from this address")
    # counted before the check, so parallel guesses cannot slip past the limit together
    if not await limiter.hit(per_account, _ACCOUNT, login):
        log.warning("login refused: account locked", extra={"login": login, "client": address})
        await _refuse(limiter, per_account, _ACCOUNT, login, "for this account")
    try:
        user = await authenticate()
    except Unauthorized:
        await limiter.hit(per_address, _ADDRESS, address)
        log.warning("login failed", extra={"login": login, "client": address})
        raise
    await limiter.clear(per_account, _ACCOUNT, login)
    return user
