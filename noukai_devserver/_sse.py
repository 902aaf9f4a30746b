"""Server-Sent Events framing (contract §6.1).

Invariants: LF only, never CR; one compact JSON object on one `data:` line;
the `event:` line and the payload's `eventType` always agree; every frame,
the last included, ends with a blank line. Heartbeats are comment frames.
"""

from __future__ import annotations

import json
from typing import Any

HEARTBEAT = b": keepalive\n\n"


def encode_json(value: Any) -> str:
    """Compact JSON; `json.dumps` escapes CR/LF inside strings, so no raw newline."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def frame(payload: dict[str, Any], event_id: int | None = None) -> bytes:
    """One event frame; `payload["eventType"]` names the event."""
    event_type = str(payload["eventType"])
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: {encode_json(payload)}\n\n".encode()


def comment(text: str) -> bytes:
    """A comment frame (ignored by parsers); `text` must not contain newlines."""
    return f": {text}\n\n".encode()


SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
