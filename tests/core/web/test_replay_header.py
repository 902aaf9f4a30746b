import uuid

import pytest

from noukai_core.web import InvalidReplayHeader, replay_enabled, replay_session_id

VAR = "NOUKAI_REPLAY_ENABLED"


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "on", " true "])
def test_gate_on(value: str) -> None:
    assert replay_enabled({VAR: value}, var=VAR)


@pytest.mark.parametrize("value", ["", "false", "0", "no", "off", "enabled"])
def test_gate_off(value: str) -> None:
    assert not replay_enabled({VAR: value}, var=VAR)
    assert not replay_enabled({}, var=VAR)


def test_header_ignored_when_gate_off_even_if_malformed() -> None:
    assert replay_session_id("not-a-uuid", enabled=False) is None
    assert replay_session_id(str(uuid.uuid4()), enabled=False) is None


def test_absent_or_blank_header_is_normal_request() -> None:
    assert replay_session_id(None, enabled=True) is None
    assert replay_session_id("  ", enabled=True) is None


def test_valid_uuid_is_returned_canonical() -> None:
    sid = uuid.uuid4()
    assert replay_session_id(str(sid).upper(), enabled=True) == str(sid)
    assert replay_session_id(f" {sid} ", enabled=True) == str(sid)


@pytest.mark.parametrize(
    "bad",
    [
        "abc-123-def",
        "../../admin",
        "{12345678-1234-5678-1234-567812345678}",
        "12345678123456781234567812345678",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
    ],
)
def test_malformed_header_is_refused_when_gate_on(bad: str) -> None:
    with pytest.raises(InvalidReplayHeader) as info:
        replay_session_id(bad, enabled=True)
    assert info.value.code == "INVALID_SESSION_ID"
