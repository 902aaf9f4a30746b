"""Response parsing: raw bytes in, models or typed errors out.

A 2xx body the models cannot read is a server bug, but the caller still gets
a typed error with the status and request id rather than a pydantic trace.
A stream frame the models cannot read is skipped with a warning (contract
§6.1 rule 4): one bad frame must not end a long run for the caller.
"""

from __future__ import annotations

import json
import logging
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


# The wire name each model stands for, computed once: reading `model_fields`
# per frame costs more than the rest of the bookkeeping.
_CANONICAL: dict[type, str] = {
    model: str(model.model_fields["event_type"].default) for model in set(EVENT_TYPES.values())
}


def parse_stream_event(frame: ServerSentEvent) -> StreamEvent | None:
    """Type one SSE frame, or return None for a frame to skip.

    Skipped silently: unknown type, non-object payload. Skipped with a warning:
    malformed JSON, a payload the event model rejects. The `event:` line wins
    over the payload's `eventType` (contract §6.1 rule 3); with it, the JSON
    text is parsed and validated in one pass.
    """
    wire_type: object = frame.event
    if not wire_type:
        try:
            payload = json.loads(frame.data)
        except ValueError:
            logger.warning("noukai: skipped a malformed stream frame (invalid JSON)")
            return None
        wire_type = payload.get("eventType") if isinstance(payload, dict) else None
    model = EVENT_TYPES.get(wire_type) if isinstance(wire_type, str) else None
    if model is None:
        return None
    try:
        event = model.model_validate_json(frame.data)
    except ValidationError as exc:
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
        return None
    canonical = _CANONICAL[model]
    if event.event_type != canonical:  # e.g. the legacy `flow_started`, or no `eventType`
        event.event_type = canonical
    if frame.id is not None:
        event.event_id = frame.id
    return event  # type: ignore[return-value]
