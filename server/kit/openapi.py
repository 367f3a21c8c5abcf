"""OpenAPI helpers: every route documents its error answers as problem details."""

from __future__ import annotations

from typing import Any

from server.kit.errors import PROBLEM_JSON
from shared.schemas.common import Problem

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired token",
    403: "Not allowed for this role",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body over QC_MAX_BODY_BYTES",
    422: "Invalid input",
    429: "Too many requests",
    503: "A dependency is unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    # every route can answer 400 (an unreadable body), 413 (a body over the ceiling:
    # server.kit.bodylimit) and 422 (invalid input)
    statuses = tuple(sorted({*statuses, 400, 413, 422}))
    return {
        s: {
            "model": Problem,
            "description": _DESCRIPTIONS.get(s, "Error"),
            "content": {PROBLEM_JSON: {}},
        }
        for s in statuses
    }
