"""Contract checks, part 0: the strict SSE reader and the SDK-shaped requests.

The other `test_contract_*` modules import this module by name (the dev
server conftest puts this directory on `sys.path`). Everything here is written
from the HTTP contract (`noukai-http-api.md`), never from the server code, so
the checks stay independent of the implementation they judge.

The reader is deliberately stricter than any SDK parser (§6.1): a CR anywhere,
a frame without its trailing blank line, an empty frame, a `data:` payload
that is not compact one-line JSON object, a data frame without an `event:`
line or with an `event:` differing from `eventType`, or an unknown line fails
the test, because each of those either breaks some SDK version outright or
makes it drop the frame (and 0.2.0 under pytest crashes on a dropped frame).
The tests at the bottom show that the reader really rejects each of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

API_VERSION = "2026-05-31"
# §6.2: types the SDKs parse, plus the drop-safe server-only ones.
PARSED_TYPES = frozenset({
    "run_started", "flow_started", "step_started", "step_input", "step_output",
    "step_completed", "step_error", "step_paused", "step_paused_for_tool_calls",
    "flow_completed",
})
DROP_SAFE_TYPES = frozenset({"step_progress", "loop_completed"})
TERMINAL_TYPES = frozenset({"flow_completed", "step_paused", "step_paused_for_tool_calls",
                            "step_error"})
# §1.4: fixed-point decimal, never a number or scientific notation.
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


class FramingError(AssertionError):
    """The byte stream breaks a §6.1 framing rule."""


@dataclass(frozen=True)
class Frame:
    """One SSE frame: `event` and `data` are None for a comment-only frame."""

    event: str | None
    data: dict[str, Any] | None
    comments: tuple[str, ...]
    id: str | None = None


def _compact_forms(value: Any) -> set[str]:
    return {json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)
            for ascii_only in (True, False)}


def _parse_frame(block: str) -> Frame:
    if not block:
        raise FramingError("empty frame (more than one blank line between frames)")
    event: str | None = None
    frame_id: str | None = None
    data_lines: list[str] = []
    comments: list[str] = []
    for line in block.split("\n"):
        if line.startswith(":"):
            comments.append(line[1:].strip())
        elif line.startswith("event:"):
            if event is not None:
                raise FramingError(f"two event: lines in {block!r}")
            event = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data_lines.append(line[len("data:"):].lstrip(" "))
        elif line.startswith("id:"):
            frame_id = line[len("id:"):].strip()
        elif line.startswith("retry:"):
            continue
        else:
            raise FramingError(f"line that is no SSE field: {line!r}")
    if not data_lines:
        if event is not None:
            raise FramingError(f"event: {event} without a data: line")
        return Frame(None, None, tuple(comments), frame_id)
    if len(data_lines) != 1:
        raise FramingError(f"payload split over {len(data_lines)} data: lines (§6.1 rule 6)")
    text = data_lines[0]
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise FramingError(f"data: is not JSON: {text!r}") from exc
    if not isinstance(payload, dict):
        raise FramingError(f"data: is not a JSON object: {text!r}")
    if text not in _compact_forms(payload):
        raise FramingError(f"data: is not compact JSON: {text!r}")
    if event is None:
        raise FramingError(f"data frame without an event: line: {text!r}")
    if payload.get("eventType") != event:
        raise FramingError(f"event: {event!r} but eventType {payload.get('eventType')!r}")
    if event not in PARSED_TYPES | DROP_SAFE_TYPES:
        raise FramingError(f"event type outside the §6.2 vocabulary: {event!r}")
    return Frame(event, payload, tuple(comments), frame_id)


def parse_stream(raw: bytes) -> list[Frame]:
    """Every frame of a complete SSE body; raises FramingError on any §6.1 slip."""
    if b"\r" in raw:
        raise FramingError("CR byte in the stream: LF-only framing is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FramingError("stream is not UTF-8") from exc
    if not text:
        return []
    if not text.endswith("\n\n"):
        raise FramingError(f"last frame is not terminated by a blank line: {text[-80:]!r}")
    return [_parse_frame(block) for block in text[:-2].split("\n\n")]


def data_frames(frames: list[Frame]) -> list[dict[str, Any]]:
    """The JSON payloads of the data frames, in order (comments dropped)."""
    return [f.data for f in frames if f.data is not None]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_decimal(value: Any) -> None:
    """§1.4: costUsd is a fixed-point decimal *string* that `float()` parses."""
    assert isinstance(value, str), f"costUsd must be a string, got {value!r}"
    assert _DECIMAL.match(value), f"costUsd not fixed-point: {value!r}"
    assert Decimal(value) >= 0 and float(value) >= 0


def check_tokens(tokens: Any) -> None:
    assert isinstance(tokens, dict), tokens
    assert all(is_int(tokens[k]) for k in ("prompt", "completion", "total")), tokens
    assert tokens["total"] == tokens["prompt"] + tokens["completion"], tokens


def _nonempty_str(payload: dict[str, Any], key: str) -> None:
    value = payload.get(key)
    assert isinstance(value, str) and value, f"{key} must be a non-empty string: {payload}"


def _opt(payload: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> None:
    value = payload.get(key)
    assert value is None or isinstance(value, kind), f"{key} has the wrong type: {payload}"


def check_event(payload: dict[str, Any]) -> None:
    """Assert the §6.3 field rules of one event payload (all SDK versions)."""
    kind = payload["eventType"]
    _nonempty_str(payload, "executionId")  # §6.3: always include executionId
    if kind == "run_started":
        _nonempty_str(payload, "runId")
        assert payload["runId"] == payload["executionId"]
        _nonempty_str(payload, "flowId")
        assert is_int(payload["stepCount"]) and payload["stepCount"] >= 1
    if kind in {"step_started", "step_input", "step_output", "step_completed", "step_error",
                "step_paused", "step_paused_for_tool_calls"}:
        _nonempty_str(payload, "stepId")
    if kind in {"step_started", "step_completed", "step_error"}:
        _opt(payload, "name", str)
    if "stepIndex" in payload or kind in {"step_paused", "step_paused_for_tool_calls"}:
        assert is_int(payload["stepIndex"]) and payload["stepIndex"] >= 0, payload
    if kind == "step_input":
        _opt(payload, "inputData", dict)
    if kind == "step_completed":
        assert "output" in payload, payload
        _opt(payload, "durationMs", int)
        assert payload.get("durationMs") is None or is_int(payload["durationMs"])
        if payload.get("tokens") is not None:
            check_tokens(payload["tokens"])
        if payload.get("costUsd") is not None:
            check_decimal(payload["costUsd"])
    if kind == "step_error":
        _opt(payload, "error", dict)
    if kind == "step_paused_for_tool_calls":
        _nonempty_str(payload, "runId")
        assert payload["runId"] == payload["executionId"]
        assert is_int(payload["iterationsUsed"])
        assert isinstance(payload["toolCallMessages"], list)
        assert isinstance(payload["toolCalls"], list) and payload["toolCalls"]
        assert isinstance(payload.get("accumulatedOutputs"), dict)
    if kind == "flow_completed":
        assert "result" in payload
        _opt(payload, "summary", dict)
        summary = payload.get("summary") or {}
        if summary.get("costUsd") is not None:  # §1.4 holds for every costUsd
            check_decimal(summary["costUsd"])
        for key in ("stepCount", "durationMs"):
            assert summary.get(key) is None or is_int(summary[key]), summary


# -- requests exactly as the SDKs build them (§1.2, §4.1, §5.1) --------------

def sdk_headers(api_key: str, session_id: str | None = None) -> dict[str, str]:
    """The Python SDK's headers; Accept is application/json even on SSE routes."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "X-Noukai-API-Version": API_VERSION,
        "User-Agent": "noukai-python/0.5.2 (httpx/0.28.1; python/3.11.9; Linux)",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    if session_id is not None:
        headers["X-Session-Id"] = session_id
    return headers


def execute_body(message: str | None = None, **extra: Any) -> dict[str, Any]:
    """A fresh `/execute` body as Python sends it: nulls omitted, defaults present."""
    body: dict[str, Any] = {"parameters": {}, "iterationsUsed": 0,
                            "accumulatedOutputs": {}, "trace": False}
    if message is not None:
        body["message"] = message
    body.update(extra)
    return body


def step_body(message: str | None = None, *, step_index: int = 0,
              execution_id: str | None = None, outputs: dict[str, Any] | None = None,
              run_remaining: bool = False, **extra: Any) -> dict[str, Any]:
    """A `/step` body as Python sends it (§5.1): every defaulted field present."""
    body: dict[str, Any] = {"stepIndex": step_index, "accumulatedOutputs": outputs or {},
                            "parameters": {}, "inputOverrides": {},
                            "runRemaining": run_remaining, "iterationsUsed": 0,
                            "trace": False}
    if message is not None:
        body["message"] = message
    if execution_id is not None:
        body["executionId"] = execution_id
    body.update(extra)
    return body


def flow_path(slug: str, route: str, org: str = "local", project: str = "demo") -> str:
    return f"/seq/{org}/{project}/{slug}/{route}"


def open_client(base_url: str, api_key: str, session_id: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=sdk_headers(api_key, session_id),
                        timeout=30.0)


@dataclass(frozen=True)
class StreamReply:
    response: httpx.Response
    raw: bytes
    frames: list[Frame]

    @property
    def events(self) -> list[dict[str, Any]]:
        return data_frames(self.frames)

    @property
    def types(self) -> list[str]:
        return [e["eventType"] for e in self.events]


def read_stream(client: httpx.Client, method: str, path: str,
                body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> StreamReply:
    """Send one SSE request, read the body to EOF, parse it strictly, check every event."""
    with client.stream(method, path, json=body, headers=headers) as response:
        raw = response.read()
    if response.status_code != 200:
        return StreamReply(response, raw, [])
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_stream(raw)
    for payload in data_frames(frames):
        check_event(payload)
    return StreamReply(response, raw, frames)


def check_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    """§1.5/§14.2-5: status, JSON envelope with string code and message, request id."""
    assert response.status_code == status, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, dict), detail
    assert isinstance(detail["code"], str) and isinstance(detail["message"], str), detail
    if code is not None:
        assert detail["code"] == code, detail
    assert response.headers.get("x-request-id"), "X-Request-ID missing on an error"
    assert "nk_" not in response.text, "an API key leaked into an error body"
    assert "Traceback" not in response.text


# -- the reader itself is strict: each rule it enforces, shown failing ---------

GOOD = (b'event: run_started\ndata: {"eventType":"run_started","executionId":"E",'
        b'"runId":"E","flowId":"F","stepCount":1}\n\n: keepalive\n\n')


def test_reader_accepts_a_well_formed_stream() -> None:
    frames = parse_stream(GOOD)
    assert [f.event for f in frames] == ["run_started", None]
    assert frames[1].comments == ("keepalive",)
    check_event(data_frames(frames)[0])


@pytest.mark.parametrize("raw", [
    GOOD.replace(b"\n", b"\r\n"),  # CRLF
    GOOD[:-1],  # last frame without its blank line
    GOOD + b"\n",  # an empty frame
    b'event: run_started\ndata: {"eventType": "run_started"}\n\n',  # not compact
    b"event: run_started\ndata: not json\n\n",
    b'event: run_started\ndata: ["eventType"]\n\n',  # not an object
    b'data: {"eventType":"run_started"}\n\n',  # no event: line
    b'event: step_started\ndata: {"eventType":"run_started"}\n\n',  # type mismatch
    b'event: run_started\ndata: {"eventType":\ndata: "run_started"}\n\n',  # split data
    b'event: mystery\ndata: {"eventType":"mystery"}\n\n',  # unknown type
    b"event: run_started\n\n",  # event without data
    b"garbage line\n\n",
])
def test_reader_rejects_each_framing_slip(raw: bytes) -> None:
    with pytest.raises(FramingError):
        parse_stream(raw)


@pytest.mark.parametrize("payload", [
    {"eventType": "step_completed", "executionId": "E", "stepId": "a", "output": 1,
     "costUsd": 0.1},
    {"eventType": "step_completed", "executionId": "E", "stepId": "a", "output": 1,
     "costUsd": "1e-05"},
    {"eventType": "step_completed", "executionId": "E", "stepId": "a", "output": 1,
     "durationMs": 1.5},
    {"eventType": "step_input", "executionId": "E", "stepId": "a", "inputData": "text"},
    {"eventType": "run_started", "executionId": "E", "flowId": "F", "stepCount": 1},
    {"eventType": "step_paused", "executionId": "E", "stepIndex": 0},
])
def test_event_checker_rejects_model_invalid_payloads(payload: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        check_event(payload)
