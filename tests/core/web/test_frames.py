import pytest

import noukai_core as nk
from noukai_core.web import EventPolicy, browser_frame


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
