"""Request bodies and specs for every endpoint (contract §4, §5, §9, §10, §11).

Bodies follow what the Python SDK sends (contract §1.4): camelCase keys,
`None` fields omitted, defaulted fields always present.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noukai_core._config import FlowTarget
from noukai_core._constants import HEADER_SESSION_ID, MAX_ATTACHMENTS, MAX_TOOLS
from noukai_core._errors import ReplayInvalidSessionError
from noukai_core._protocol._wire import RequestSpec


@dataclass(frozen=True)
class RunOptions:
    """Everything a caller chose for one run, validated once (fresh call inputs)."""

    message: str | None = None
    messages: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    block_overrides: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    trace: bool = False
    input_overrides: dict[str, Any] | None = None


def run_options(
    *,
    message: str | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    block_overrides: Mapping[str, Any] | None = None,
    attachments: Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    trace: bool = False,
    input_overrides: Mapping[str, Any] | None = None,
) -> RunOptions:
    """Validate the caller's arguments before any request is made."""
    if message is not None and messages:
        raise ValueError("pass message= or messages=, not both")
    if attachments is not None and len(attachments) > MAX_ATTACHMENTS:
        raise ValueError(f"at most {MAX_ATTACHMENTS} attachments, got {len(attachments)}")
    if tools is not None and len(tools) > MAX_TOOLS:
        raise ValueError(f"at most {MAX_TOOLS} tools, got {len(tools)}")
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required"):
        raise ValueError(
            f"tool_choice must be 'auto', 'none', 'required' or a dict, not {tool_choice!r}"
        )
    return RunOptions(
        message=message,
        messages=[dict(m) for m in messages] if messages else None,
        parameters=dict(parameters or {}),
        block_overrides=dict(block_overrides) if block_overrides else None,
        attachments=[dict(a) for a in attachments] if attachments else None,
        tools=[dict(t) for t in tools] if tools else None,
        tool_choice=dict(tool_choice) if isinstance(tool_choice, Mapping) else tool_choice,
        trace=bool(trace),
        input_overrides=dict(input_overrides) if input_overrides else None,
    )


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def new_idempotency_key() -> str:
    return f"nk-idem-{uuid.uuid4().hex}"


def _work_post(
    path: str,
    body: dict[str, Any],
    *,
    session_id: str | None,
    timeout: float | None,
    idempotency_key: str | None,
) -> RequestSpec:
    """A POST that can start (and bill) a run: `/execute`, `/jobs` or `/step`.

    It always carries an `Idempotency-Key`, fixed here so every retry of the
    call reuses it (issue 5 item 9), and `X-Session-Id` only when the caller
    passes one: tool resumes never do (contract §1.2, §8.1).
    """
    return RequestSpec(
        "POST",
        path,
        json=body,
        headers={HEADER_SESSION_ID: session_id} if session_id else {},
        starts_work=True,
        idempotency_key=idempotency_key or new_idempotency_key(),
        timeout=timeout,
    )


def _fresh_body(options: RunOptions, **fields: Any) -> dict[str, Any]:
    """A fresh `/execute` or `/jobs` body: the inputs, then the defaults Python always sends."""
    return _compact(
        {
            "message": options.message,
            "parameters": options.parameters,
            "blockOverrides": options.block_overrides,
            **fields,
            "iterationsUsed": 0,
            "accumulatedOutputs": {},
            "trace": options.trace,
        }
    )


def execute_spec(
    target: FlowTarget,
    version_path: str,
    options: RunOptions,
    *,
    session_id: str | None,
    timeout: float | None,
    idempotency_key: str | None,
) -> RequestSpec:
    """A fresh `/execute` (E1)."""
    body = _fresh_body(
        options,
        messages=options.messages,
        attachments=options.attachments,
        tools=options.tools,
        toolChoice=options.tool_choice,
    )
    return _work_post(
        f"{target.base_path}{version_path}/execute",
        body,
        session_id=session_id,
        timeout=timeout,
        idempotency_key=idempotency_key,
    )


def resume_spec(
    target: FlowTarget,
    version_path: str,
    options: RunOptions,
    *,
    execution_id: str,
    paused_at_step: str,
    iterations_used: int,
    tool_call_messages: list[dict[str, Any]],
    accumulated_outputs: dict[str, Any],
    tool_results: Sequence[Mapping[str, Any]],
    timeout: float | None,
) -> RequestSpec:
    """A tool-result resume of `/execute` (contract §8.1): no `message`, no `X-Session-Id`."""
    body = _compact(
        {
            "parameters": options.parameters,
            "blockOverrides": options.block_overrides,
            "attachments": options.attachments,
            "tools": options.tools,
            "toolChoice": options.tool_choice,
            "executionId": execution_id,
            "pausedAtStep": paused_at_step,
            "iterationsUsed": iterations_used,
            "toolCallMessages": [*tool_call_messages, *normalize_tool_results(tool_results)],
            "accumulatedOutputs": accumulated_outputs,
            "trace": options.trace,
        }
    )
    return _work_post(
        f"{target.base_path}{version_path}/execute",
        body,
        session_id=None,
        timeout=timeout,
        idempotency_key=None,
    )


def step_spec(
    target: FlowTarget,
    version_path: str,
    body: dict[str, Any],
    *,
    session_id: str | None,
    timeout: float | None,
) -> RequestSpec:
    """One `/step` call (E2); `body` comes from the step cursor."""
    return _work_post(
        f"{target.base_path}{version_path}/step",
        body,
        session_id=session_id,
        timeout=timeout,
        idempotency_key=None,
    )


def jobs_spec(
    target: FlowTarget,
    version_path: str,
    options: RunOptions,
    *,
    session_id: str | None,
    timeout: float | None,
    idempotency_key: str | None,
) -> RequestSpec:
    """A job submission (E3): the subset of ExecuteRequest the SDKs send there (§9.1)."""
    return _work_post(
        f"{target.base_path}{version_path}/jobs",
        _fresh_body(options),
        session_id=session_id,
        timeout=timeout,
        idempotency_key=idempotency_key,
    )


def get_spec(
    path: str,
    *,
    timeout: float | None,
    params: Mapping[str, str] | None = None,
    deadline: float | None = None,
) -> RequestSpec:
    return RequestSpec(
        "GET", path, params=dict(params or {}), timeout=timeout, deadline=deadline
    )


def session_spec(session_id: str, *, timeout: float | None = None) -> RequestSpec:
    """E9; the id must be a UUID before it may go into a URL (contract §1.4)."""
    return RequestSpec(
        "GET",
        f"/seq/sessions/{canonical_session_uuid(session_id)}",
        timeout=timeout,
        session_fetch=True,
    )


def canonical_session_uuid(session_id: str) -> str:
    try:
        return str(uuid.UUID(str(session_id)))
    except ValueError:
        raise ReplayInvalidSessionError(
            f"replay session id {session_id!r} is not a UUID", code="INVALID_SESSION_ID"
        ) from None


def normalize_tool_results(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn any of the four result shapes of contract §8.3 into the canonical one.

    Accepted: `toolCallId` or `tool_call_id`; `content` or `output`; optional
    `role`. Non-string content is JSON-encoded, as the server expects text.
    """
    normalized: list[dict[str, Any]] = []
    for item in results:
        if not isinstance(item, Mapping):
            raise TypeError(f"a tool result must be a dict, not {type(item).__name__}")
        call_id = item.get("toolCallId", item.get("tool_call_id"))
        if not isinstance(call_id, str) or not call_id:
            raise ValueError("every tool result needs 'tool_call_id' (or 'toolCallId')")
        content = item["content"] if "content" in item else item.get("output")
        if not isinstance(content, str):
            content = json.dumps(content)
        normalized.append({"role": "tool", "toolCallId": call_id, "content": content})
    return normalized
