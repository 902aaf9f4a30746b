"""When to retry, and how long to wait (issue 5 item 9). Pure: the transport asks.

Two classes of request:

- idempotent (GET): retried after any connection failure and on 408, 429 and
  5xx;
- work-starting POSTs (`/execute`, `/jobs`, `/step`): retried only when no work
  can have started: a connection failure before the request was sent, a 429,
  or a 503 that carries `Retry-After`. Never after a 500/502/504 or a lost
  response: the hosted API promises no deduplication, so a duplicate run is a
  duplicate charge. Every retry reuses the call's `Idempotency-Key`.

Delays: `Retry-After` when sent (seconds or HTTP date), else exponential
backoff with jitter. A `Retry-After` beyond `MAX_RETRY_AFTER` is not slept
through silently: the error is raised at once, carrying `retry_after`, so the
caller decides whether to wait that long.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping

from noukai_core._errors import parse_retry_after_header
from noukai_core._protocol._wire import RequestSpec

MAX_RETRY_AFTER = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


class Failure(enum.Enum):
    NOT_SENT = "not_sent"  # connect error / connect or pool timeout: the server saw nothing
    LOST = "lost"  # sent, but the response never (fully) arrived


_IDEMPOTENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (attempt - 1)))
    return float(ceiling / 2 + rand() * ceiling / 2)


def retry_delay(
    spec: RequestSpec,
    attempt: int,
    max_retries: int,
    *,
    status_code: int | None = None,
    headers: Mapping[str, str] | None = None,
    failure: Failure | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retrying `spec` after failed `attempt` (1-based), or None."""
    if attempt > max_retries:
        return None
    retry_after = parse_retry_after_header((headers or {}).get("retry-after"))
    if failure is Failure.NOT_SENT:
        retryable = True
    elif failure is Failure.LOST:
        retryable = not spec.starts_work
    elif status_code is None:
        retryable = False
    elif spec.starts_work:
        retryable = status_code == 429 or (status_code == 503 and retry_after is not None)
    else:
        retryable = status_code in _IDEMPOTENT_STATUSES or status_code >= 500
    if not retryable:
        return None
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER else None
    return backoff(attempt, rand)
