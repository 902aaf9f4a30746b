"""Response parsing: raw bytes in, models or typed errors out.

A 2xx body the models cannot read is a server bug, but the caller still gets
a typed error with the status and request id rather than a pydantic trace.
A stream frame the models cannot read is skipped with a warning (contract
§6.1 rule 4): one bad frame must not end a long run for the caller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from noukai_core._errors import FlowExecutionError, error_from_response
from noukai_core._models._events import EVENT_TYPES, StreamEvent
from noukai_core._models._results import ExecuteResult, PausedResult
from noukai_core._protocol._sse import ServerSentEvent
from noukai_core._protocol._wire import RawResponse

logger = logging.getLogger("noukai_core")

ModelT = TypeVar("ModelT", bound=BaseModel)


def raise_for_status(response: RawResponse, *, session_fetch: bool = False) -> None:
    if response.status_code >= 400:
        raise error_from_response(
            response.status_code, response.headers, response.content, session_fetch=session_fetch
        )


def _invalid(response: RawResponse, why: str) -> FlowExecutionError:
    return FlowExecutionError(
        f"unreadable response from the Noukai API: {why}",
        status_code=response.status_code,
        code="INVALID_RESPONSE",
        request_id=response.request_id,
        response_body=response.content[:1000].decode("utf-8", "replace"),
    )


def json_body(response: RawResponse) -> Any:
    raise_for_status(response)
    try:
        return json.loads(response.content)
    except ValueError:
        raise _invalid(response, "body is not JSON") from None


def parse_model(response: RawResponse, model: type[ModelT]) -> ModelT:
    body = json_body(response)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(
            response, f"{model.__name__}: {exc.error_count()} invalid field(s)"
        ) from None


def parse_execute(response: RawResponse) -> ExecuteResult | PausedResult:
    body = json_body(response)
    status = body.get("status") if isinstance(body, dict) else None
    try:
        if status == "tool_calls_required":
            return PausedResult.model_validate(body)
        return ExecuteResult.model_validate(body)
    except ValidationError as exc:
        raise _invalid(response, f"execute result: {exc.error_count()} invalid field(s)") from None


# Per wire name: the model's compiled validator (called directly, skipping
# `model_validate_json`'s Python wrapper) and the canonical name it stands for.
# Built once: per frame only a dict lookup and one call into pydantic-core remain.
_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    name: (
        model.__pydantic_validator__.validate_json,
        str(model.model_fields["event_type"].default),
    )
    for name, model in EVENT_TYPES.items()
}


def _warn_rejected(exc: ValidationError, wire_type: str) -> None:
    kind = exc.errors()[0]["type"] if exc.error_count() else ""
    if kind == "json_invalid":
        logger.warning(
            "noukai: skipped a malformed stream frame (invalid JSON, event %r)", wire_type
        )
    elif kind != "model_type":  # a JSON array or scalar: not an event, dropped silently
        logger.warning(
            "noukai: skipped a %s frame the event model rejects (%d invalid field(s))",
            wire_type,
            exc.error_count(),
        )


def parse_stream_event(frame: ServerSentEvent) -> StreamEvent | None:
    """Type one SSE frame, or return None for a frame to skip.

    Skipped silently: unknown type, non-object payload. Skipped with a warning:
    malformed JSON, a payload the event model rejects. The `event:` line wins
    over the payload's `eventType` (contract §6.1 rule 3); with it, the JSON
    text is parsed and validated in one pass by that type's validator.
    """
    wire_type = frame.event
    if not wire_type:
        try:
            payload = json.loads(frame.data)
        except ValueError:
            logger.warning("noukai: skipped a malformed stream frame (invalid JSON)")
            return None
        named = payload.get("eventType") if isinstance(payload, dict) else None
        if not isinstance(named, str):
            return None
        wire_type = named
    parser = _PARSERS.get(wire_type)
    if parser is None:
        return None
    validate, canonical = parser
    try:
        event: StreamEvent = validate(frame.data)
    except ValidationError as exc:
        _warn_rejected(exc, wire_type)
        return None
    if event.event_type != canonical:  # e.g. the legacy `flow_started`, or no `eventType`
        event.event_type = canonical
    if frame.id is not None:
        event.event_id = frame.id
    return event
