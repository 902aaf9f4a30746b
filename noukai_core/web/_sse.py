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

from typing import Any

from pydantic_core import to_json

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
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")


def encode_json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON, always valid for a browser's `JSON.parse`.

    pydantic-core's serializer (a dependency already) is several times faster
    than `json.dumps`, which matters once per streamed event. NaN and
    infinities, which JSON cannot express, become `null`. Raises `ValueError`
    for values that are not JSON-serialisable.
    """
    return to_json(data, inf_nan_mode="null")


def encode_json(data: Any) -> str:
    """`encode_json_bytes` as text."""
    return encode_json_bytes(data).decode("utf-8")


def encode_event(event_type: str, data: Any, *, event_id: str | int | None = None) -> bytes:
    """One SSE frame: `event:`, optional `id:`, one `data:` line of compact JSON.

    Raises `ValueError` when the event type or id contains a line break, and
    when `data` is not JSON-serialisable.
    """
    if not event_type:
        raise ValueError("SSE event type must not be empty")
    _check_field("event type", event_type)
    try:
        payload = encode_json_bytes(data)
    except ValueError as exc:
        raise ValueError(f"SSE data for {event_type!r} is not JSON-serialisable: {exc}") from exc
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (event_type.encode(), payload)
    text_id = str(event_id)
    if not isinstance(event_id, int):  # an int's text cannot hold a line break
        _check_field("id", text_id)
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event_type.encode(), text_id.encode(), payload)


def encode_event_json(
    event_type: str, payload: bytes, *, event_id: int | None = None
) -> bytes:
    """A frame from an already-encoded compact JSON `payload` (one line, no raw newline).

    Raises `ValueError` when the payload holds a raw line break (not compact JSON).
    """
    _check_field("event type", event_type)
    if b"\n" in payload or b"\r" in payload:
        raise ValueError("SSE payload must be one line of compact JSON")
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (event_type.encode(), payload)
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event_type.encode(), event_id, payload)


def encode_comment(text: str = "keepalive") -> bytes:
    """A comment frame (`: text`), which every SSE parser ignores: used as a heartbeat."""
    _check_field("comment", text)
    return f": {text}\n\n".encode()
