"""Writing Server-Sent Events frames for a browser.

Invariants every frame keeps, because browsers and the SDK parsers rely on them:

- lines end with LF only (a CR would split a line differently in some parsers);
- the payload is compact JSON on one `data:` line (compact JSON never contains
  a raw newline, so one line always suffices);
- a frame ends with a blank line, so the last frame is never left unterminated;
- `id:` is written only for real events, never for heartbeats: a browser's
  `Last-Event-ID` then always names an event it actually received.
"""

from __future__ import annotations

import json
from typing import Any

#: Headers of every SSE response. `no-transform` and `X-Accel-Buffering: no`
#: stop proxies (nginx, CDNs) from compressing or buffering the stream, which
#: would hold events back until the run ends.
SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def _check_field(name: str, value: str) -> None:
    # A CR, LF or NUL inside a field would end the line early and let the
    # rest be read as another field: refuse it rather than write a broken frame.
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")


def encode_json(data: Any) -> str:
    """Compact JSON as a browser's `JSON.parse` reads it (no NaN, no spaces)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_event(event_type: str, data: Any, *, event_id: str | int | None = None) -> bytes:
    """One SSE frame: `event:`, optional `id:`, one `data:` line of compact JSON.

    Raises `ValueError` when the event type or id contains a line break, and
    when `data` is not JSON-serialisable (NaN included).
    """
    if not event_type:
        raise ValueError("SSE event type must not be empty")
    _check_field("event type", event_type)
    parts = [f"event: {event_type}\n"]
    if event_id is not None:
        text_id = str(event_id)
        _check_field("id", text_id)
        parts.append(f"id: {text_id}\n")
    try:
        payload = encode_json(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"SSE data for {event_type!r} is not JSON-serialisable: {exc}") from exc
    parts.append(f"data: {payload}\n\n")
    return "".join(parts).encode("utf-8")


def encode_comment(text: str = "keepalive") -> bytes:
    """A comment frame (`: text`), which every SSE parser ignores: used as a heartbeat."""
    _check_field("comment", text)
    return f": {text}\n\n".encode()
