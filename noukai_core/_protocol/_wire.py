"""The two values that cross the sans-I/O boundary: a request to make and a response seen.

Protocol code builds `RequestSpec`s and reads `RawResponse`s; only the
transport turns them into httpx calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from noukai_core._config import check_call_timeout


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request, described without sending it.

    `starts_work` marks the POSTs that can start (and bill) a run; the retry
    policy treats those strictly (issue 5 item 9). `idempotency_key` is fixed
    here, before the first attempt, so every retry of this call reuses it.
    """

    method: str
    path: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    starts_work: bool = False
    idempotency_key: str | None = None
    timeout: float | None = None
    session_fetch: bool = False
    # A `time.monotonic()` instant no attempt and no retry sleep may pass:
    # `Job.wait(timeout=)` bounds its polls with it, retries included.
    deadline: float | None = None

    def __post_init__(self) -> None:
        # Every per-call `timeout=` passes here before anything is sent.
        check_call_timeout(self.timeout)


@dataclass(frozen=True)
class RawResponse:
    """A complete (non-streamed) response; header names are lower-case."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id") or None


@dataclass(frozen=True)
class Send:
    """Protocol step: send this request and hand me back its `RawResponse`."""

    spec: RequestSpec


@dataclass(frozen=True)
class RunTools:
    """Protocol step: run the tool handler on these calls and hand me back its results."""

    calls: list[dict[str, Any]]
