"""Domain errors and their RFC 9457 problem-details rendering.

Services raise ``DomainError`` subclasses with a stable machine ``code``; the app turns
them into ``application/problem+json`` answers. Clients branch on ``code``, never on text.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self, detail: str, *, code: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra
        self.headers: dict[str, str] = {}

    def problem(self) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.detail, title=self.title, **self.extra)


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class InProgress(Conflict):
    """What the request needs is still being settled (e.g. a crashed request's change being
    put back): not the request's answer, so an Idempotency-Key does not keep it; the same
    request may succeed shortly."""

    code = "request_in_progress"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": "5"}


class Unauthorized(DomainError):
    status, code, title = 401, "not_authenticated", "Not authenticated"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unprocessable(DomainError):
    status, code, title = 422, "invalid_request", "Invalid request"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "unavailable", "Service unavailable"


def problem_body(
    status: int, code: str, detail: str, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": f"https://qc.dev/problems/{code.replace('_', '-')}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
