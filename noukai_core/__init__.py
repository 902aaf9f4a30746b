"""noukai_core: the Noukai client (sync `Noukai`, async `AsyncNoukai`).

This module is the public surface and nothing else: every public name is
re-exported here and listed in `__all__`; implementation modules are private
(underscored).
"""

from noukai_core._async_flow import AsyncFlow
from noukai_core._client import AsyncNoukai, Noukai
from noukai_core._constants import (
    HEADER_REPLAY,
    HEADER_RESPONSE_SESSION,
    HEADER_SESSION_ID,
    REPLAY_ENABLED_ENV_VAR,
)
from noukai_core._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    FlowExecutionError,
    FlowNotFoundError,
    InsufficientCreditsError,
    NoukaiError,
    PermissionDeniedError,
    RateLimitError,
    ReplayDisabledError,
    ReplayError,
    ReplayForbiddenError,
    ReplayInvalidSessionError,
    ReplayLeftoverError,
    ReplayMissError,
    ReplayNoSnapshotsError,
    ReplaySessionExpiredError,
    ReplaySessionNotFoundError,
    ToolCallLimitError,
)
from noukai_core._flow import Flow
from noukai_core._jobs import AsyncJob, Job
from noukai_core._models._events import (
    FlowCompleted,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepInput,
    StepOutput,
    StepPaused,
    StepStarted,
    StreamEvent,
    ToolCallsRequired,
)
from noukai_core._models._jobs import JobAccepted, JobStatus
from noukai_core._models._results import ExecuteResult, ExecutionFailure, PausedResult
from noukai_core._models._traces import RunSummary, StepAttempts, StepTrace, TokenBreakdown, Trace
from noukai_core._runs import AsyncRun, Run
from noukai_core._scope import (
    ScopeMode,
    TraceScope,
    current_session_id,
    replay_enabled,
    replay_scope,
    replay_scope_sync,
    trace_scope,
    trace_scope_sync,
)
from noukai_core._trace import replay, trace
from noukai_core._version import __version__

__all__ = [
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
