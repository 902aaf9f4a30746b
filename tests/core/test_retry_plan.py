"""`retry_plan`: the one retry loop both transports drive, stepped by hand (no I/O)."""

from __future__ import annotations

from noukai_core._protocol._retry import (
    GIVE_UP,
    Answered,
    Attempt,
    Failure,
    Sleep,
    retry_plan,
)
from noukai_core._protocol._wire import RequestSpec

GET = RequestSpec("GET", "/x")
POST = RequestSpec("POST", "/x/execute", starts_work=True, idempotency_key="k")


def test_attempts_sleep_and_give_up_after_max_retries() -> None:
    plan = retry_plan(GET, 2, rand=lambda: 0.0)
    assert next(plan) == Attempt(1)
    assert plan.send(Answered(503, {})) == Sleep(0.25)
    assert next(plan) == Attempt(2)
    assert plan.send(Failure.LOST) == Sleep(0.5)
    assert next(plan) == Attempt(3)
    assert plan.send(Answered(500, {})) is GIVE_UP


def test_a_work_starting_post_follows_the_strict_rule() -> None:
    plan = retry_plan(POST, 5)
    assert next(plan) == Attempt(1)
    assert plan.send(Answered(503, {"retry-after": "1"})) == Sleep(1.0)
    assert next(plan) == Attempt(2)
    assert plan.send(Failure.NOT_SENT) != GIVE_UP
    assert next(plan) == Attempt(3)
    assert plan.send(Failure.LOST) is GIVE_UP  # the run may have started


def test_retry_after_past_the_cap_gives_up_at_once() -> None:
    plan = retry_plan(GET, 5)
    next(plan)
    assert plan.send(Answered(429, {"retry-after": "3600"})) is GIVE_UP


def test_no_sleep_ends_at_or_past_the_specs_deadline() -> None:
    spec = RequestSpec("GET", "/x", deadline=10.0)
    now = [9.0]
    plan = retry_plan(spec, 5, rand=lambda: 0.0, clock=lambda: now[0])
    assert next(plan) == Attempt(1)
    assert plan.send(Failure.LOST) == Sleep(0.25)  # 9.25 < 10: allowed
    assert next(plan) == Attempt(2)
    now[0] = 9.6
    assert plan.send(Failure.LOST) is GIVE_UP  # 9.6 + 0.5 would pass the deadline
