"""Authentication first, the error envelope, request ids, and the access log."""

from __future__ import annotations

import httpx
import pytest
from devserver_helpers import Api, assert_error, wait_for

from noukai_devserver.pytest_plugin import DevServer

FLOW_PATHS = [
    ("POST", "/seq/local/demo/hello-world/execute"),
    ("POST", "/seq/nope/nope/nope/execute"),
    ("POST", "/seq/local/demo/hello-world/step"),
    ("POST", "/seq/local/demo/hello-world/jobs"),
    ("GET", "/seq/local/demo/hello-world/jobs/x"),
    ("GET", "/seq/local/demo/hello-world/runs/x"),
    ("GET", "/seq/local/demo/hello-world/runs/x/trace"),
    ("GET", "/seq/local/demo/hello-world/runs/x/trace/stream"),
    ("GET", "/seq/sessions/not-a-uuid"),
    ("GET", "/seq/local/demo/hello-world/no-such-route"),
]


@pytest.mark.parametrize(("method", "path"), FLOW_PATHS)
@pytest.mark.parametrize("auth", [None, "Bearer nk_wrong", "Basic abc", "Bearer"])
def test_bad_credentials_get_401_before_anything_else(server: DevServer, method: str,
                                                      path: str, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = httpx.request(method, server.base_url + path, headers=headers,
                             content=b"{not json")
    body = assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "nk_wrong" not in str(body)


def test_client_request_id_is_echoed(api: Api) -> None:
    response = api.execute("hello-world", {"message": "x"}, headers={"X-Request-ID": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"
    error = api.execute("nope", {"message": "x"}, headers={"X-Request-ID": "abc-2"})
    assert error.headers["x-request-id"] == "abc-2"


def test_generated_request_ids_are_unique(api: Api) -> None:
    ids = {api.execute("hello-world", {"message": "x"}).headers["x-request-id"]
           for _ in range(5)}
    assert len(ids) == 5


def test_ignored_headers_are_accepted(api: Api) -> None:
    response = api.execute("hello-world", {"message": "x"}, headers={
        "X-Noukai-API-Version": "2026-05-31", "User-Agent": "noukai-python/0.2.0",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "a=b", "X-Unknown": "1"})
    assert response.status_code == 200


def test_malformed_json_is_400_and_wrong_types_are_422(api: Api) -> None:
    bad = api.http.post(api.flow("hello-world", "execute"), content=b"{\"message\": ",
                        headers={"Content-Type": "application/json"})
    assert_error(bad, 400, "INVALID_JSON")
    for raw in (b'{"message": "x", "parameters": {"n": NaN}}', b'{"message": Infinity}',
                b'\xff\xfe', b'{"message": "x"} trailing'):
        response = api.http.post(api.flow("hello-world", "execute"), content=raw,
                                 headers={"Content-Type": "application/json"})
        assert_error(response, 400, "INVALID_JSON")
    for body in ({"message": 5}, {"message": "x", "parameters": []},
                 {"message": "x", "iterationsUsed": "1"}, {"message": "x", "trace": "yes"},
                 {"message": "x", "iterationsUsed": True}, [1, 2], "text"):
        response = api.http.post(api.flow("hello-world", "execute"), json=body)
        assert_error(response, 422, "VALIDATION_ERROR")
    response = api.http.post(api.flow("hello-world", "step"), json={"stepIndex": "0"})
    assert_error(response, 422, "VALIDATION_ERROR")


def test_oversized_body_is_413(api: Api) -> None:
    body = {"message": "x", "parameters": {"blob": "y" * (5 * 1024 * 1024)}}
    assert_error(api.execute("hello-world", body), 413, "PAYLOAD_TOO_LARGE")


def test_unknown_routes_and_methods_use_the_envelope(api: Api) -> None:
    assert_error(api.get("/seq/local/demo/hello-world/whatever"), 404, "NOT_FOUND")
    assert_error(api.http.delete(api.flow("hello-world", "execute")), 405,
                 "METHOD_NOT_ALLOWED")
    assert_error(api.http.post("/seq/local/demo/hello-world/latest/execute", json={}), 404,
                 "NOT_FOUND")


def test_odd_inputs_never_give_a_500(api: Api) -> None:
    odd_bodies: list[object] = [
        {"message": "\u0000\ud7ff\U0001f600"}, {"message": "x", "blockOverrides": {"a": 1}},
        {"message": "x", "blockOverrides": {"respond": {"model": 3, "stream": "x"}}},
        {"message": "x", "attachments": [1]}, {"message": "x", "toolChoice": 3},
        {"message": "x", "inputOverrides": {"respond": {"message": None}}},
        {"executionId": "x", "pausedAtStep": "y", "toolCallMessages": [1]},
        {"messages": [{"content": "no role"}]}, {"messages": [[]]}, {"message": "x" * 100000},
        {"messages": [{"role": "assistant", "toolCalls": "nope"}, {"role": "user",
                                                                   "content": 5}]},
    ]
    for body in odd_bodies:
        for suffix in ("execute", "step", "jobs"):
            response = api.http.post(api.flow("tools-enabled", suffix), json=body)
            assert response.status_code < 500, (suffix, body, response.text)
            if response.status_code >= 400:
                assert set(response.json()["detail"]) >= {"code", "message"}


def test_access_log_has_one_line_per_request_without_keys_or_bodies(server: DevServer,
                                                                    api: Api) -> None:
    marker = "body-marker-7f1e"
    api.execute("hello-world", {"message": marker}, headers={"X-Request-ID": "log-check-1"})
    line = wait_for(lambda: next((ln for ln in server.log_text.splitlines()
                                  if "log-check-1" in ln), None))
    assert "POST /api/v1/seq/local/demo/hello-world/execute 200" in line
    assert "ms" in line
    access = [ln for ln in server.log_text.splitlines() if "noukai_devserver.access" in ln]
    assert sum("log-check-1" in ln for ln in access) == 1
    assert not any("nk_" in ln or marker in ln for ln in access)


def test_deeply_nested_bodies_are_400_not_500(api: Api) -> None:
    too_deep = [b'{"message": "x", "parameters": {"a": ' + b"[" * 50000 + b"]" * 50000 + b"}}",
                b'{"message": "x", "parameters": ' + b'{"a":' * 150 + b"1" + b"}" * 151]
    for raw in too_deep:
        for suffix in ("execute", "step", "jobs"):
            response = api.http.post(api.flow("hello-world", suffix), content=raw,
                                     headers={"Content-Type": "application/json"})
            assert_error(response, 400, "INVALID_JSON")
    nested: dict = {"leaf": 1}
    for _ in range(50):
        nested = {"a": nested}
    response = api.execute("hello-world", {"message": "x", "parameters": nested})
    assert response.json()["status"] == "completed"
