"""Request bodies of E1-E3: reading, type checks and normalisation.

Rules (contract §1.4, §4.1, §5.1, §8.3, §12): JSON `null` equals absent;
unknown fields are ignored; malformed JSON is 400 `INVALID_JSON`; a wrong
type is 422 `VALIDATION_ERROR` naming the field; a body over the size limit is
413 before it is parsed. Chat turns and tool results are accepted in camelCase
or snake_case and normalised to camelCase.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ._errors import ApiError, validation_error

MESSAGES_LIMIT = 1_000_000
MAX_TOOLS = 64
MAX_ATTACHMENTS = 10
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = ("user", "assistant", "tool")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; `{}` for an empty body."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        # NaN/Infinity are not JSON: refusing them here keeps every response valid JSON.
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "request body is not valid JSON") from None
    except RecursionError:  # nested deeper than the parser itself can go
        raise _too_deep() from None
    if _deeper_than(body, MAX_DEPTH):
        raise _too_deep()
    if not isinstance(body, dict):
        raise validation_error("body", "must be a JSON object")
    return body


MAX_DEPTH = 100


def _too_deep() -> ApiError:
    return ApiError(400, "INVALID_JSON", f"request body nests deeper than {MAX_DEPTH} levels")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a parsed body nests deeper than `limit`, checked without recursion.

    Everything downstream (masking, snapshots, fingerprints, JSON encoding)
    walks bodies recursively; bounding the depth here means none of it can
    hit Python's recursion limit and answer a 500.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _typed(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise validation_error(name, f"must be {what}")
    return value


@dataclass
class FlowRequest:
    """The union of ExecuteRequest and StepRequest, validated."""

    message: str | None = None
    messages: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    block_overrides: dict[str, Any] = field(default_factory=dict)
    input_overrides: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    execution_id: str | None = None
    paused_at_step: str | None = None
    iterations_used: int = 0
    tool_call_messages: list[dict[str, Any]] | None = None
    accumulated_outputs: dict[str, Any] = field(default_factory=dict)
    trace: bool = False
    step_index: int = 0
    run_remaining: bool = False

    @property
    def is_execute_resume(self) -> bool:
        """Contract §4.1: all three of executionId, pausedAtStep, toolCallMessages."""
        return (self.execution_id is not None and self.paused_at_step is not None
                and self.tool_call_messages is not None)


def _check_tools(tools: list[Any], choice: Any) -> None:
    if len(tools) > MAX_TOOLS:
        raise ApiError(400, "TOOLS_INVALID", f"at most {MAX_TOOLS} tools per request")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict):
            raise ApiError(400, "TOOLS_INVALID", f"tools[{i}] must be "
                           '{"type": "function", "function": {"name": ...}}')
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ApiError(400, "TOOL_NAME_INVALID",
                           f"tools[{i}].function.name must match [A-Za-z0-9_-]{{1,64}}")
    if choice is None or choice in ("auto", "none", "required"):
        return
    fn = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ApiError(400, "TOOLS_INVALID", "toolChoice must be 'auto', 'none', 'required' "
                       'or {"type": "function", "function": {"name": ...}}')
    if fn["name"] not in [t["function"]["name"] for t in tools]:
        raise ApiError(400, "TOOLS_INVALID", "toolChoice names a tool that was not offered")


def parse_flow_request(body: dict[str, Any]) -> FlowRequest:
    req = FlowRequest()
    req.message = _typed(body, "message", str, "a string")
    messages = _typed(body, "messages", list, "a list of chat messages")
    req.messages = messages or None
    req.parameters = _typed(body, "parameters", dict, "an object") or {}
    req.block_overrides = _typed(body, "blockOverrides", dict, "an object") or {}
    req.input_overrides = _typed(body, "inputOverrides", dict, "an object") or {}
    attachments = _typed(body, "attachments", list, "a list") or []
    if len(attachments) > MAX_ATTACHMENTS or not all(isinstance(a, dict) for a in attachments):
        raise ApiError(400, "ATTACHMENTS_INVALID",
                       f"attachments must be at most {MAX_ATTACHMENTS} objects")
    req.attachments = attachments
    req.tools = _typed(body, "tools", list, "a list of tool definitions") or []
    req.tool_choice = body.get("toolChoice")
    if req.tools or req.tool_choice is not None:
        _check_tools(req.tools, req.tool_choice)
    req.execution_id = _typed(body, "executionId", str, "a string")
    req.paused_at_step = _typed(body, "pausedAtStep", str, "a string")
    iterations = _typed(body, "iterationsUsed", int, "an integer")
    if iterations is not None and iterations < 0:
        raise validation_error("iterationsUsed", "must be >= 0")
    req.iterations_used = iterations or 0
    req.tool_call_messages = _typed(body, "toolCallMessages", list, "a list of messages")
    req.accumulated_outputs = _typed(body, "accumulatedOutputs", dict, "an object") or {}
    req.trace = bool(_typed(body, "trace", bool, "a boolean"))
    index = _typed(body, "stepIndex", int, "an integer")
    req.step_index = 0 if index is None else index
    req.run_remaining = bool(_typed(body, "runRemaining", bool, "a boolean"))
    return req


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def normalise_turns(turns: list[Any], field_name: str, *,
                    tool_results: bool) -> list[dict[str, Any]]:
    """Normalise chat turns to camelCase; check roles and the 1 MB cap."""
    if _size(turns) > MESSAGES_LIMIT:
        raise ApiError(413, "MESSAGES_TOO_LARGE",
                       f"{field_name} is over {MESSAGES_LIMIT} bytes of JSON")
    out: list[dict[str, Any]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ApiError(400, "MESSAGES_ROLE_INVALID", f"{field_name}[{i}] must be an object")
        call_id = turn.get("toolCallId", turn.get("tool_call_id"))
        role = turn.get("role")
        if role is None and tool_results and call_id is not None:
            role = "tool"
        if not isinstance(role, str) or role not in _ROLES:
            raise ApiError(400, "MESSAGES_ROLE_INVALID",
                           f"{field_name}[{i}].role must be one of {list(_ROLES)}")
        content = turn.get("content", turn.get("output"))
        norm: dict[str, Any] = {"role": role, "content": content}
        calls = turn.get("toolCalls", turn.get("tool_calls"))
        if role == "assistant" and calls:
            if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
                raise validation_error(f"{field_name}[{i}].toolCalls", "must be a list of objects")
            norm["toolCalls"] = calls
        if role == "tool":
            norm["toolCallId"] = None if call_id is None else str(call_id)
            if content is not None and not isinstance(content, str):
                norm["content"] = json.dumps(content, ensure_ascii=False)
        if isinstance(turn.get("name"), str):
            norm["name"] = turn["name"]
        out.append(norm)
    return out


def check_tool_results(conversation: list[dict[str, Any]], pending: list[str]) -> None:
    """The last assistant tool-call turn must be the paused one, each call answered once."""
    last = max((i for i, t in enumerate(conversation)
                if t["role"] == "assistant" and t.get("toolCalls")), default=None)
    if last is None:
        raise ApiError(400, "TOOL_RESULTS_MISMATCH",
                       "toolCallMessages has no assistant turn with tool calls")
    calls = conversation[last]["toolCalls"]
    call_ids = [str(c.get("id")) if isinstance(c, dict) else "" for c in calls]
    if sorted(call_ids) != sorted(pending):
        raise ApiError(400, "TOOL_RESULTS_MISMATCH",
                       "the last assistant turn is not the paused tool-call turn")
    results = [t.get("toolCallId") for t in conversation[last + 1:] if t["role"] == "tool"]
    unknown = [r for r in results if r not in call_ids]
    if unknown:
        raise ApiError(400, "TOOL_RESULTS_MISMATCH", f"tool results for unknown ids {unknown}")
    missing = [c for c in call_ids if c not in results]
    if missing:
        raise ApiError(400, "TOOL_RESULTS_MISMATCH", f"no tool result for {missing}")
    if len(results) != len(set(results)):
        raise ApiError(400, "TOOL_RESULTS_MISMATCH", "a tool call has two results")
