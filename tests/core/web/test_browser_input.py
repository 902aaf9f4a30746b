import json

import pytest

from noukai_core.web import BrowserInputError, BrowserInputPolicy, is_json_media_type


def _code(policy: BrowserInputPolicy, body: object) -> str:
    with pytest.raises(BrowserInputError) as info:
        policy.parse(body)
    return info.value.code


def test_default_allows_message_only() -> None:
    assert BrowserInputPolicy().parse({"message": "hi"}) == {"message": "hi", "parameters": {}}
    for field in ["tools", "version", "block_overrides", "blockOverrides", "trace", "session_id"]:
        assert _code(BrowserInputPolicy(), {"message": "hi", field: 1}) == "FIELD_NOT_ALLOWED"


def test_parameters_are_allowed_by_name() -> None:
    policy = BrowserInputPolicy(parameters=frozenset({"tone"}))
    assert policy.parse({"message": "m", "parameters": {"tone": "dry"}})["parameters"] == {
        "tone": "dry"
    }
    assert _code(policy, {"message": "m", "parameters": {"model": "x"}}) == (
        "PARAMETER_NOT_ALLOWED"
    )
    anything = BrowserInputPolicy(parameters="*")
    assert anything.parse({"message": "m", "parameters": {"a": 1}})["parameters"] == {"a": 1}


def test_message_checks() -> None:
    policy = BrowserInputPolicy(max_message_chars=5)
    assert _code(policy, {}) == "MISSING_MESSAGE"
    assert _code(policy, {"message": " "}) == "MISSING_MESSAGE"
    assert _code(policy, {"message": 3}) == "INVALID_MESSAGE"
    assert _code(policy, {"message": "123456"}) == "MESSAGE_TOO_LONG"
    assert _code(policy, ["message"]) == "INVALID_BODY"
    assert BrowserInputPolicy(require_message=False).parse({}) == {"parameters": {}}


def test_opt_in_fields() -> None:
    policy = BrowserInputPolicy(allow_version=True, allow_block_overrides=True, allow_tools=True)
    kwargs = policy.parse(
        {
            "message": "m",
            "version": 2,
            "blockOverrides": {"a": {}},
            "tools": [],
            "toolChoice": "auto",
        }
    )
    assert kwargs == {
        "message": "m",
        "parameters": {},
        "version": 2,
        "block_overrides": {"a": {}},
        "tools": [],
        "tool_choice": "auto",
    }
    assert _code(policy, {"message": "m", "version": "latest"}) == "INVALID_VERSION"


def test_query_form_treats_other_keys_as_parameters() -> None:
    policy = BrowserInputPolicy(parameters=frozenset({"tone"}))
    assert policy.parse_query({"message": "hi", "tone": "dry"}) == {
        "message": "hi",
        "parameters": {"tone": "dry"},
    }
    with pytest.raises(BrowserInputError):
        policy.parse_query({"message": "hi", "version": "3"})


def test_raw_json_body() -> None:
    policy = BrowserInputPolicy()
    assert policy.parse_json(b'{"message": "hi"}') == {"message": "hi", "parameters": {}}
    for raw in [b"{", b"", b"null", b"\xff"]:
        with pytest.raises(BrowserInputError) as info:
            policy.parse_json(raw)
        assert info.value.code in ("INVALID_JSON", "INVALID_BODY")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("application/json", True), ("Application/JSON; charset=utf-8", True),
     ("application/merge-patch+json", True), ("text/plain", False),
     ("application/x-www-form-urlencoded", False), ("multipart/form-data; boundary=x", False),
     (None, False), ("", False)],
)
def test_json_media_type(content_type: str | None, expected: bool) -> None:
    assert is_json_media_type(content_type) is expected


def test_the_body_cap_fits_the_longest_acceptable_body() -> None:
    policy = BrowserInputPolicy(max_message_chars=100, parameters="*")
    longest = json.dumps({"message": "\U0001f600" * 100, "parameters": {"tone": "dry"}},
                         ensure_ascii=False).encode()
    assert len(longest) <= policy.max_body_bytes
    assert policy.parse(json.loads(longest))["message"] == "\U0001f600" * 100
    # and it grows with the policy, not without bound
    assert BrowserInputPolicy(max_message_chars=10).max_body_bytes < policy.max_body_bytes
