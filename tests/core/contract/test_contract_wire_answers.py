"""Contract checks of the client: how `noukai_core` reads what comes back.

§1.5 (retries, status to error class), §6.1/§7.4 (frame variants), §7.1 rule 5,
§8.4 (client round limit), §9.2 (job 404 race), §11.2/§11.4 (session fetch
errors and the replay matcher), against the fake Noukai of `core_contract_fake`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from core_contract_checks import (
    tool_results,
)
from core_contract_fake import (
    EXEC_ID,
    KEY,
    TOOLS,
    FakeNoukai,
    block_output,
)

from noukai_core import (
    AuthenticationError,
    FlowExecutionError,
    FlowNotFoundError,
    InsufficientCreditsError,
    Noukai,
    NoukaiError,
    PermissionDeniedError,
    RateLimitError,
    ReplayForbiddenError,
    ReplayInvalidSessionError,
    ReplayLeftoverError,
    ReplayMissError,
    ReplayNoSnapshotsError,
    ReplaySessionExpiredError,
    ReplaySessionNotFoundError,
    ToolCallLimitError,
    replay_scope_sync,
)

# -- §1.5, §7.1, §7.4, §8.4, §9.2: how the client reads what comes back -------------


@pytest.mark.parametrize(
    "status,error",
    [
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (403, PermissionDeniedError),
        (404, FlowNotFoundError),
        (429, RateLimitError),
        (400, FlowExecutionError),
        (409, FlowExecutionError),
        (413, FlowExecutionError),
        (422, FlowExecutionError),
    ],
)
def test_error_statuses_map_to_typed_errors(
    client: Noukai, fake: FakeNoukai, status: int, error: type[NoukaiError]
) -> None:
    """§1.5: status → class, `.code`/`.request_id`; 401 and 429 headers are kept."""
    with pytest.raises(error) as raised:
        client.flow(f"err{status}/app/hello").execute("hi")
    assert raised.value.status_code == status and raised.value.code == f"CODE_{status}"
    assert raised.value.request_id and raised.value.request_id.startswith("req_")
    if status == 401:
        assert raised.value.www_authenticate == 'Bearer error="invalid_token"'
    if status == 429:
        assert raised.value.retry_after == 120.0
    assert len(fake.requests) == 1


def test_plain_string_detail_becomes_the_message(client: Noukai) -> None:
    with pytest.raises(FlowExecutionError) as raised:
        client.flow("errstr/app/hello").execute("hi")
    assert "plain text problem" in str(raised.value) and raised.value.code in (None, "")


def test_hosted_style_sparse_frames_do_not_stall_steps(client: Noukai, fake: FakeNoukai) -> None:
    """§7.4: no runId on run_started, no stepId on step_paused, drop-safe extra types."""
    steps = list(client.flow("acme/hosted/hello").steps("hi"))
    assert [s.step_id for s in steps] == ["a", "b"]
    second = fake.requests[1].json
    assert second["executionId"] == EXEC_ID and second["stepIndex"] == 1


def test_tolerated_frame_variants_of_section_6_1(client: Noukai) -> None:
    """§6.1: `flow_started` alias, type from `eventType` alone, `data:` without a
    space, `id:`/`retry:` fields and multi-line data are all read."""
    events = list(client.flow("acme/legacy/hello").events("hi"))
    assert [e.event_type for e in events] == ["run_started", "step_completed", "flow_completed"]
    assert events[1].output == block_output("a")


def test_stream_without_terminal_frame_is_not_reissued(client: Noukai, fake: FakeNoukai) -> None:
    """§7.1 rule 5: Python treats an unterminated run as finished: no re-issue loop."""
    with contextlib.suppress(NoukaiError):
        list(client.flow("acme/noterm/hello").steps("hi"))
    assert len(fake.requests) == 1


def test_job_404_right_after_submission_counts_as_pending(client: Noukai, fake: FakeNoukai) -> None:
    """§9.2: a 404 within 5 s of submission is the queue race, not an error."""
    job = client.flow("acme/late/hello").execute_async("hi")
    assert job.wait(timeout=10, poll_interval=0.05).status == "completed"
    assert [r.method for r in fake.requests].count("GET") == 3


def test_client_round_limit_stops_resuming(client: Noukai, fake: FakeNoukai) -> None:
    """§8.4: max_tool_rounds=1 and a second pause: ToolCallLimitError, nothing sent."""
    with pytest.raises(ToolCallLimitError) as raised:
        client.flow("acme/loop/hello").execute(
            "Weather?", tools=TOOLS, max_tool_rounds=1, tool_handler=tool_results
        )
    assert raised.value.code == "TOOL_CALL_LIMIT_CLIENT"
    assert len(fake.requests) == 2


def test_bad_key_and_bad_session_id_fail_before_any_request(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§1.2: keys must start with nk_; §1.4: only UUID session ids are fetched."""
    with pytest.raises(AuthenticationError):
        Noukai("sk_not_noukai", base_url=fake.base_url)
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    with (
        Noukai(KEY, base_url=fake.base_url) as client,
        pytest.raises((NoukaiError, ValueError)),
        replay_scope_sync(replay_session_id="not-a-uuid", client=client),
    ):
        pass
    assert fake.requests == []


@pytest.mark.parametrize(
    "suffix,error",
    [
        ("400", ReplayInvalidSessionError),
        ("403", ReplayForbiddenError),
        ("404", ReplaySessionNotFoundError),
        ("410", ReplaySessionExpiredError),
        ("299", ReplayNoSnapshotsError),
    ],
)
def test_session_fetch_statuses_map_to_replay_errors(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch, suffix: str, error: type[NoukaiError]
) -> None:
    """§1.5 / §11.2: 400/403/404/410 on E9 become the Replay* errors; a session with
    `snapshotsAvailable: false` is refused as a whole (no flow call is made)."""
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    session_id = f"00000000-0000-4000-8000-000000000{suffix}"
    with (
        Noukai(KEY, base_url=fake.base_url, org="acme", project="app", max_retries=0) as c,
        pytest.raises(error),
        replay_scope_sync(replay_session_id=session_id, client=c),
    ):
        c.flow("hello").execute("anything")
    assert {r.path for r in fake.requests} == {f"/api/v1/seq/sessions/{session_id}"}


@pytest.mark.parametrize("operation", ["steps", "job", "trace"])
def test_errors_on_streams_jobs_and_traces_are_typed(
    client: Noukai, fake: FakeNoukai, operation: str
) -> None:
    """§5.2 / §1.5: a pre-stream JSON error, a job submit error and a trace read error
    surface as the typed error with code and request id."""
    flow = client.flow("err404/app/hello")
    with pytest.raises(FlowNotFoundError) as raised:
        if operation == "steps":
            list(flow.steps("hi"))
        elif operation == "job":
            flow.execute_async("hi")
        else:
            flow.run(EXEC_ID).trace()
    assert raised.value.code == "CODE_404" and raised.value.request_id
    assert len(fake.requests) == 1


def _failure_code(call: Any) -> str | None:
    """The recorded error's code, however the client reports a failed run: §11.4's
    FlowExecutionError, or (issue 5 item 3, mirroring the live 200 `failed` reply
    of §4.4) an ExecuteResult with status "failed" and its `error`."""
    try:
        outcome = call()
    except FlowExecutionError as exc:
        return exc.code
    assert outcome.status == "failed" and outcome.result is None, outcome
    return str(outcome.error.code)


def test_replay_serves_calls_by_slug_trigger_and_position(
    fake: FakeNoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§11.4: execute() gets the last snapshot (or the recorded error), events() the
    synthesised run; only E9 goes on the wire; a call with no entry is a miss."""
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    session_id = "00000000-0000-4000-8000-000000000777"
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as client:
        with replay_scope_sync(replay_session_id=session_id, client=client):
            events = list(client.flow("hello").events("any input"))
            result = client.flow("hello").execute("different input")
            replayed_failure = _failure_code(lambda: client.flow("other").execute("x"))
            with pytest.raises(ReplayMissError):
                client.flow("hello").execute("one too many")
        with (
            pytest.raises(ReplayLeftoverError),
            replay_scope_sync(replay_session_id=session_id, client=client),
        ):
            client.flow("hello").execute("only one of three")
    # §11.2: the reserved sidecar key is stripped (SDK >= 0.3.0); blockCount = steps.
    assert result.status == "completed" and result.result == {"y": 2}
    assert result.execution_id == "e-1" and result.block_count == 2
    assert [e.event_type for e in events] == [
        "run_started",
        "step_started",
        "step_completed",
        "flow_completed",
    ]
    assert events[2].output == {"z": 3} and events[-1].result == {"z": 3}
    assert replayed_failure == "BOOM"
    assert {r.path for r in fake.requests} == {f"/api/v1/seq/sessions/{session_id}"}
