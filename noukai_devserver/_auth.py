"""Authentication, per-key rate limits, org/project visibility, version segments.

Order (contract §1.6): authenticate -> rate limit -> org/project visibility
(404 `FLOW_NOT_FOUND`, so existence does not leak) -> flow + version (`_resolver`).
Keys are never logged or echoed; a principal carries only the org and a short
fingerprint of its key.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

from starlette.requests import Request

from ._errors import ApiError, unauthenticated
from ._workspace import Workspace

_VERSION = re.compile(r"^v(\d{1,9})$")


@dataclass(frozen=True)
class Principal:
    org: str
    key_id: str


class RateLimiter:
    """Fixed windows of `window` seconds per key; `limit` requests per window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}

    def check(self, key_id: str, limit: int | None) -> None:
        if limit is None:
            return
        now = time.monotonic()
        start, count = self._windows.get(key_id, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= limit:
            retry = max(1, math.ceil(start + self.window - now))
            raise ApiError(429, "RATE_LIMIT",
                           f"rate limit of {limit} requests per {self.window:g} s exceeded",
                           headers={"Retry-After": str(retry)})
        self._windows[key_id] = (start, count + 1)


def authenticate(workspace: Workspace, limiter: RateLimiter, request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise unauthenticated("missing Authorization header")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("expected an 'Authorization: Bearer <API key>' header")
    key = workspace.keys.get(token)
    if key is None:
        raise unauthenticated("unknown API key")
    key_id = hashlib.sha256(token.encode()).hexdigest()[:12]
    limiter.check(key_id, key.rate_limit)
    return Principal(key.org, key_id)


def check_project(workspace: Workspace, principal: Principal, org: str, project: str,
                  what: str = "flow") -> None:
    """404 for an org/project the key cannot see (not 403: do not leak existence)."""
    found = workspace.orgs.get(org)
    if org != principal.org or found is None or project not in found.projects:
        code = "FLOW_NOT_FOUND" if what == "flow" else "RUN_NOT_FOUND"
        raise ApiError(404, code, f"no {what} in {org}/{project} for this API key")


def parse_version(segment: str | None) -> int | None:
    """None for the base path (production), 0 for `/v0` (draft), N for `/vN`."""
    if segment is None:
        return None
    match = _VERSION.match(segment)
    if not match:
        raise ApiError(404, "NOT_FOUND", f"no route for version segment {segment!r}")
    return int(match.group(1))
