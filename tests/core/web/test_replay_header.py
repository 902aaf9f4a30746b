import uuid

import pytest

from noukai_core.web import InvalidReplayHeader, replay_session_id


def test_header_ignored_when_gate_off_even_if_malformed() -> None:
    assert replay_session_id("not-a-uuid", enabled=False) is None
    assert replay_session_id(str(uuid.uuid4()), enabled=False) is None


def test_gate_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    sid = str(uuid.uuid4())
    monkeypatch.delenv("NOUKAI_REPLAY_ENABLED", raising=False)
    assert replay_session_id(sid) is None
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "true")
    assert replay_session_id(sid) == sid
    monkeypatch.setenv("NOUKAI_REPLAY_ENABLED", "off")
    assert replay_session_id(sid) is None


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
