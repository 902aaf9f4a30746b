"""When to retry, and how long to wait (issue 5 item 9). Pure: the transport asks.

Two classes of request:

- idempotent (GET): retried after any connection failure and on 408, 429 and
  5xx;
- work-starting POSTs (`/execute`, `/jobs`, `/step`): retried only when no work
  can have started: a connection failure before the request was sent, a 429,
  or a 503 that carries `Retry-After`. Never after a 500/502/504 or a lost
  response: the hosted API promises no deduplication, so a duplicate run is a
  duplicate charge. Every retry reuses the call's `Idempotency-Key`.

The transports drive `retry_plan`, a generator that says what to do next:
`Attempt(n)` (send), then, told how attempt n failed, `Sleep(d)` (wait,
then ask again) or `GIVE_UP` (the failure stands: raise it, or hand the
error response on). They only send, sleep and log; the rule is here once.

Delays: `Retry-After` when sent (seconds or HTTP date), else exponential
backoff with jitter. A `Retry-After` beyond `MAX_RETRY_AFTER` is not slept
through silently: the error is raised at once, carrying `retry_after`, so the
caller decides whether to wait that long.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Answered:
    """An attempt that got an error status; header names are lower-case."""

    status_code: int
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Attempt:
    """Send the request now; `number` counts from 1 (the log's `attempt`)."""

    number: int


@dataclass(frozen=True)
class Sleep:
    """Wait `seconds`, then ask the plan for the next attempt."""

    seconds: float


class GiveUp(enum.Enum):
    """The last failure stands: no more attempts."""

    GIVE_UP = "give_up"


GIVE_UP = GiveUp.GIVE_UP

RetryStep = Attempt | Sleep | GiveUp
RetryPlan = Generator[RetryStep, "Failure | Answered | None", None]


def retry_plan(
    spec: RequestSpec,
    max_retries: int,
    *,
    rand: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> RetryPlan:
    """The retry loop of one call, without its I/O.

    Protocol: `next(plan)` gives `Attempt(1)`. After a failed attempt,
    `plan.send(failure_or_answer)` gives `Sleep(d)` or `GIVE_UP`; after a
    `Sleep`, `next(plan)` gives the next `Attempt`. A successful attempt
    needs no report: the caller just stops using the plan. A spec with a
    `deadline` gets no sleep that would end at or past it.
    """
    number = 0
    while True:
        number += 1
        outcome = yield Attempt(number)
        if outcome is None:
            return
        if isinstance(outcome, Failure):
            delay = retry_delay(spec, number, max_retries, failure=outcome, rand=rand)
        else:
            delay = retry_delay(
                spec,
                number,
                max_retries,
                status_code=outcome.status_code,
                headers=outcome.headers,
                rand=rand,
            )
        if delay is None or (spec.deadline is not None and clock() + delay >= spec.deadline):
            yield GIVE_UP
            return
        yield Sleep(delay)
