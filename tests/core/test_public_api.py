from collections.abc import Callable

import noukai_core

EXPECTED = [
    "HEADER_REPLAY",
    "HEADER_RESPONSE_SESSION",
    "HEADER_SESSION_ID",
    "REPLAY_ENABLED_ENV_VAR",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncFlow",
    "AsyncJob",
    "AsyncNoukai",
    "AsyncRun",
    "AuthenticationError",
    "ExecuteResult",
    "ExecutionFailure",
    "Flow",
    "FlowCompleted",
    "FlowExecutionError",
    "FlowNotFoundError",
    "InsufficientCreditsError",
    "Job",
    "JobAccepted",
    "JobStatus",
    "Noukai",
    "NoukaiError",
    "PausedResult",
    "PermissionDeniedError",
    "RateLimitError",
    "ReplayDisabledError",
    "ReplayError",
    "ReplayForbiddenError",
    "ReplayInvalidSessionError",
    "ReplayLeftoverError",
    "ReplayMissError",
    "ReplayNoSnapshotsError",
    "ReplaySessionExpiredError",
    "ReplaySessionNotFoundError",
    "Run",
    "RunStarted",
    "RunSummary",
    "ScopeMode",
    "StepAttempts",
    "StepCompleted",
    "StepFailed",
    "StepInput",
    "StepOutput",
    "StepPaused",
    "StepStarted",
    "StepTrace",
    "StreamEvent",
    "TokenBreakdown",
    "ToolCallLimitError",
    "ToolCallsRequired",
    "Trace",
    "TraceScope",
    "__version__",
    "current_session_id",
    "replay",
    "replay_enabled",
    "replay_scope",
    "replay_scope_sync",
    "trace",
    "trace_scope",
    "trace_scope_sync",
]


def test_public_api(check_public_api: Callable[..., None]) -> None:
    check_public_api(noukai_core, EXPECTED)


def test_version_is_a_string() -> None:
    assert noukai_core.__version__.count(".") == 2


def test_header_and_env_names_are_the_contracts() -> None:
    assert noukai_core.HEADER_SESSION_ID == "X-Session-Id"
    assert noukai_core.HEADER_REPLAY == "X-Noukai-Replay"
    assert noukai_core.HEADER_RESPONSE_SESSION == "X-Noukai-Session"
    assert noukai_core.REPLAY_ENABLED_ENV_VAR == "NOUKAI_REPLAY_ENABLED"
