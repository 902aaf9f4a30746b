import json
from dataclasses import replace
from typing import Any

import pytest

import noukai_core as nk
from noukai_core.web import BrowserFrameEncoder, EventPolicy, browser_frame


def test_typed_and_plain_events_give_the_same_frame() -> None:
    typed = nk.StepCompleted(execution_id="e", step_id="a", output={"r": 1}, cost_usd="0.1",
                             tokens={"prompt": 1, "completion": 1, "total": 2})
    plain = {"eventType": "step_completed", "executionId": "e", "stepId": "a",
             "output": {"r": 1}, "costUsd": "0.1", "tokens": {"total": 2}}
    policy = EventPolicy()
    expected = (b'event: step_completed\nid: 4\n'
                b'data: {"eventType":"step_completed","executionId":"e","stepId":"a",'
                b'"output":{"r":1}}\n\n')
    assert browser_frame(typed, policy=policy, event_id=4) == expected
    assert browser_frame(plain, policy=policy, event_id=4) == expected


def test_dropped_events_have_no_frame() -> None:
    hidden = nk.StepInput(execution_id="e", step_id="a", input_data={"q": 1})
    assert browser_frame(hidden, policy=EventPolicy(), event_id=1) is None
    assert browser_frame({"eventType": "step_paused"}, policy=EventPolicy(), event_id=1) is None


def test_anything_else_is_refused() -> None:
    with pytest.raises(TypeError):
        browser_frame("step_completed", policy=EventPolicy(), event_id=1)



# A stream as a browser-facing passthrough sees it: every event class, a
# failure with a secret message, and the same classes again (the encoder's
# cached plans must give what the first event of each class gave).
STREAM: list[Any] = [
    nk.RunStarted(execution_id="e", run_id="e", flow_id="f", step_count=2),
    nk.StepStarted(execution_id="e", step_id="a", name="A", step_index=0),
    nk.StepInput(execution_id="e", step_id="a", input_data={"secret": "p"}),
    nk.StepOutput(execution_id="e", step_id="a", output_data={"delta": "x\n\u2028", "v": 1.5}),
    nk.StepOutput(execution_id="e", step_id="a", output_data=[float("nan")], step_index=0),
    nk.StepCompleted(execution_id="e", step_id="a", name="A", output={"r": "x"},
                     duration_ms=3, tokens={"prompt": 1, "completion": 2, "total": 3},
                     cost_usd="0.1", step_index=0),
    nk.StepFailed(execution_id="e", step_id="b", error={"code": "X", "message": "secret"}),
    nk.StepFailed(execution_id="e", step_id="b"),
    nk.StepFailed(execution_id="e", step_id="b", error={"code": "Y", "message": "secret 2"}),
    nk.StepPaused(execution_id="e", step_id="a", step_index=0, next_step_index=1),
    nk.ToolCallsRequired(execution_id="e", run_id="e", step_id="a", step_index=0,
                         iterations_used=1, tool_call_messages=[{"role": "user"}],
                         tool_calls=[{"id": "c"}], accumulated_outputs={"a": 1}),
    {"eventType": "step_output", "stepId": "a", "outputData": "plain", "costUsd": "1"},
    nk.StepOutput(execution_id="e", step_id="a", output_data="again"),
    nk.FlowCompleted(execution_id="e", run_id="e", result={"tokens": 1},
                     summary={"status": "completed", "tokens": {"total": 3}, "costUsd": "1",
                              "nested": {"deep": 1}}),
]

STREAM_POLICIES = [
    EventPolicy(),
    EventPolicy(expose_error_messages=True),
    EventPolicy().forwarding("step_input", "step_paused_for_tool_calls")
    .keeping("step_input", ["inputData"]).dropping("step_input", ["inputData.secret"]),
    EventPolicy().keeping("step_completed", ["tokens"]).dropping("*", ["name"]),
    EventPolicy().dropping("flow_completed", ["summary.nested.deep"]),
    EventPolicy().without("step_output"),
]


@pytest.mark.parametrize("policy", STREAM_POLICIES)
def test_the_stream_encoder_writes_what_browser_frame_writes(policy: EventPolicy) -> None:
    encoder = BrowserFrameEncoder(policy)
    appender = BrowserFrameEncoder(policy)  # the same stream through encode_into
    appended: list[bytes] = []
    next_id = 1
    written = 0
    for event in STREAM + STREAM:  # twice: the second pass runs on cached plans
        expected = browser_frame(event, policy=policy, event_id=next_id)
        assert encoder.encode(event) == expected
        before = b"".join(appended)
        payload_size = appender.encode_into(event, appended)
        frame = b"".join(appended).removeprefix(before)
        assert frame == (expected or b"")
        # the reported size is the JSON's, which a passthrough's buffer bound adds up
        assert payload_size == (len(expected.split(b"\ndata: ", 1)[1]) - 2 if expected else 0)
        if expected is not None:
            next_id += 1
            written += 1
    # ids count the frames written, so a dropped event leaves no gap
    assert encoder.last_id == appender.last_id == written
    assert written < 2 * len(STREAM)


@pytest.mark.parametrize("policy", STREAM_POLICIES)
def test_streams_under_one_policy_share_plans_but_not_ids(policy: EventPolicy) -> None:
    # The second stream starts with every class plan the first worked out;
    # what it writes must not depend on that, and its ids start again at 1.
    def stream(encoder: BrowserFrameEncoder) -> list[bytes | None]:
        return [encoder.encode(event) for event in STREAM]

    first = stream(BrowserFrameEncoder(policy))
    assert stream(BrowserFrameEncoder(policy)) == first
    assert stream(BrowserFrameEncoder(replace(policy))) == first  # equal policy, nothing cached
    assert b"\nid: 1\n" in next(frame for frame in first if frame is not None)


def test_the_stream_encoder_keeps_secrets_out_of_cached_frames() -> None:
    encoder = BrowserFrameEncoder(EventPolicy())
    frames = [encoder.encode(event) for event in STREAM + STREAM]
    raw = b"".join(frame for frame in frames if frame is not None)
    for hidden in (b"secret", b"costUsd", b"tokens\":{", b"inputData", b"toolCallMessages",
                   b"event: step_input", b"event: step_paused"):
        assert hidden not in raw
    # each frame is one event line, one id line, one data line of JSON
    for frame in raw.split(b"\n\n")[:-1]:
        event_line, id_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ") and id_line.startswith(b"id: ")
        json.loads(data_line.removeprefix(b"data: "))


def test_an_event_whose_type_differs_from_its_class_is_encoded_by_its_own_type() -> None:
    encoder = BrowserFrameEncoder(EventPolicy())
    assert encoder.encode(nk.StepOutput(step_id="a", output_data=1)) is not None
    # the same class, tagged with a type the policy does not forward
    odd = nk.StepOutput(event_type="step_input", step_id="a", output_data=2)
    assert encoder.encode(odd) is None
    frame = encoder.encode(nk.StepOutput(step_id="a", output_data=3))
    assert frame is not None and frame.startswith(b"event: step_output\nid: 2\n")


def test_the_stream_encoder_refuses_what_is_not_an_event() -> None:
    with pytest.raises(TypeError):
        BrowserFrameEncoder(EventPolicy()).encode("step_completed")
