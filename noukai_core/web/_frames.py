"""One flow event in, the frame a browser may see out.

Every integration streams the same way: the policy decides what the browser
sees, the SSE encoder writes it. This is that one step, so the FastAPI, Flask
and Django passthroughs differ only in how bytes reach the socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from noukai_core.web._policy import EventPolicy
from noukai_core.web._sse import encode_event, encode_event_json


def browser_frame(event: Any, *, policy: EventPolicy, event_id: int) -> bytes | None:
    """The SSE frame for `event` (with `id: event_id`), or `None` when `policy` drops it.

    `event` is a typed event of noukai_core (the fast path: serialised in one
    call) or a plain mapping in wire shape (`eventType` names its type).
    """
    if isinstance(event, BaseModel) and hasattr(event, "event_type"):
        payload = policy.dump_json(event)
        if payload is None:
            return None
        return encode_event_json(str(event.event_type), payload, event_id=event_id)
    if not isinstance(event, Mapping):
        raise TypeError(f"not a flow event: {type(event).__name__}")
    data = dict(event)
    event_type = str(data.get("eventType") or data.get("event_type") or "message")
    visible = policy.apply(event_type, data)
    return None if visible is None else encode_event(event_type, visible, event_id=event_id)
