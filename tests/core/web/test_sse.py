import json

import pytest

from noukai_core.web import SSE_HEADERS, encode_comment, encode_event, encode_event_json


def _lines(frame: bytes) -> list[str]:
    text = frame.decode("utf-8")
    assert text.endswith("\n\n"), "a frame must end with a blank line"
    assert "\r" not in text
    return text[:-2].split("\n")


def test_event_frame_has_type_id_and_one_compact_data_line() -> None:
    frame = encode_event("step_completed", {"stepId": "a", "output": "x\ny"}, event_id=3)
    assert _lines(frame) == [
        "event: step_completed",
        "id: 3",
        'data: {"stepId":"a","output":"x\\ny"}',
    ]


def test_event_without_id_has_no_id_line() -> None:
    lines = _lines(encode_event("run_started", {"executionId": "e"}))
    assert [line.split(":")[0] for line in lines] == ["event", "data"]


def test_data_round_trips_through_json_including_unicode_and_line_separators() -> None:
    data = {"text": "héllo\r\nwörld\u2028end", "n": [1, 2.5, None, True]}
    (line,) = [x for x in _lines(encode_event("step_output", data)) if x.startswith("data: ")]
    assert json.loads(line[len("data: ") :]) == data


def test_comment_frame_is_a_heartbeat() -> None:
    assert encode_comment() == b": keepalive\n\n"
    assert encode_comment("ping") == b": ping\n\n"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", ""])
def test_event_type_with_line_break_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_event(bad, {})


def test_id_with_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_event("x", {}, event_id="1\ndata: evil")


def test_non_json_data_is_refused_and_nan_becomes_null() -> None:
    with pytest.raises(ValueError):
        encode_event("x", {"v": object()})
    (line,) = [x for x in _lines(encode_event("x", {"v": float("nan"), "w": float("inf")}))
               if x.startswith("data: ")]
    assert json.loads(line[len("data: "):]) == {"v": None, "w": None}


def test_headers_disable_caching_and_proxy_buffering() -> None:
    assert SSE_HEADERS["Content-Type"].startswith("text/event-stream")
    assert SSE_HEADERS["Cache-Control"] == "no-cache, no-transform"
    assert SSE_HEADERS["X-Accel-Buffering"] == "no"


def test_frame_from_encoded_json_matches_encode_event() -> None:
    assert encode_event_json("step_output", b'{"a":1}', event_id=7) == encode_event(
        "step_output", {"a": 1}, event_id=7)
    assert encode_event_json("x", b"{}") == encode_event("x", {})
    with pytest.raises(ValueError):
        encode_event_json("x", b'{"a":\n1}')
