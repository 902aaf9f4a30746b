"""The passthrough's endpoint rules over a real uvicorn server, against a canned upstream.

What a request may do and what it gets back before any event: the
allowlist, JSON only, the GET form, the browser-input policy, the body cap,
the authorize hook, the status mapping, the OpenAPI schema and the script.
The canned upstream records what reached it, so "no run started" is observable.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from starlette.requests import Request

from noukai_core.web import BrowserInputPolicy
from noukai_fastapi import StreamedFlow, flow_stream_router, noukai_lifespan


def post(base_url: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, timeout=10, **kwargs)


def test_allowlist_only(canned_upstream: Any, serve_passthrough: Any) -> None:
    with serve_passthrough() as base:
        assert post(base, "/noukai/flows/always-fails", {"message": "x"}).status_code == 404
        assert post(base, "/noukai/flows/../flows/x", {"message": "x"}).status_code == 404
    assert canned_upstream.requests == []


def test_json_only_and_get_off_by_default(canned_upstream: Any, serve_passthrough: Any) -> None:
    with serve_passthrough() as base:
        form = httpx.post(f"{base}/noukai/flows/hello-world", data={"message": "x"})
        assert form.status_code == 415
        assert form.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        plain = httpx.post(f"{base}/noukai/flows/hello-world", content=b'{"message":"x"}',
                           headers={"content-type": "text/plain"})
        assert plain.status_code == 415
        assert httpx.get(f"{base}/noukai/flows/hello-world?message=x").status_code == 405
    assert canned_upstream.requests == []


def test_get_endpoint_and_last_event_id(
    canned_upstream: Any, serve_passthrough: Any, sse_frames: Any
) -> None:
    with serve_passthrough(allow_get=True) as base:
        response = httpx.get(f"{base}/noukai/flows/hello-world", params={"message": "hi"})
        assert response.status_code == 200
        assert sse_frames(response.content)[-1][0] == "flow_completed"
        assert len(canned_upstream.requests) == 1
        again = httpx.get(f"{base}/noukai/flows/hello-world", params={"message": "hi"},
                          headers={"Last-Event-ID": "8"})
        assert again.status_code == 204
    assert len(canned_upstream.requests) == 1, "a reconnect must not start a second run"


def test_field_policy(canned_upstream: Any, serve_passthrough: Any) -> None:
    options = {"inputs": BrowserInputPolicy(parameters=frozenset({"tone"}))}
    with serve_passthrough(**options) as base:
        for body in [{"message": "x", "tools": []}, {"message": "x", "version": 2},
                     {"message": "x", "block_overrides": {}},
                     {"message": "x", "parameters": {"model": "gpt"}}, {}, [1]]:
            response = post(base, "/noukai/flows/hello-world", body)
            assert response.status_code == 422, body
            assert set(response.json()["error"]) == {"code", "message"}
        bad_json = httpx.post(f"{base}/noukai/flows/hello-world", content=b"{",
                              headers={"content-type": "application/json"})
        assert bad_json.status_code == 422
        assert not canned_upstream.requests
        ok = post(base, "/noukai/flows/hello-world",
                  {"message": "x", "parameters": {"tone": "dry"}})
        assert ok.status_code == 200
    sent = json.loads(canned_upstream.requests[0][3])
    assert sent["parameters"] == {"tone": "dry"}
    assert "tools" not in sent and "version" not in sent


def test_oversized_body_is_413_before_any_run(
    canned_upstream: Any, serve_passthrough: Any
) -> None:
    inputs = BrowserInputPolicy(max_message_chars=10)
    with serve_passthrough(inputs=inputs) as base:
        huge = post(base, "/noukai/flows/hello-world", {"message": "x" * 200_000})

        def chunks() -> Any:  # no Content-Length: the cap applies while reading
            yield b'{"message": "'
            for _ in range(100):
                yield b"x" * 10_000
            yield b'"}'

        streamed = httpx.post(f"{base}/noukai/flows/hello-world", content=chunks(),
                              headers={"content-type": "application/json"})
    assert huge.status_code == 413 and streamed.status_code == 413
    assert huge.json()["error"]["code"] == "BODY_TOO_LARGE"
    assert canned_upstream.requests == []


def test_server_side_parameters_win(canned_upstream: Any, serve_passthrough: Any) -> None:
    flow = StreamedFlow("hello-world", parameters={"tone": "formal"},
                        inputs=BrowserInputPolicy(parameters="*"))
    with serve_passthrough(flows=[flow]) as base:
        post(base, "/noukai/flows/hello-world", {"message": "x", "parameters": {"tone": "rude"}})
    assert json.loads(canned_upstream.requests[0][3])["parameters"] == {"tone": "formal"}


def test_authorize_hook_sync_and_async(canned_upstream: Any, serve_passthrough: Any) -> None:
    def sync_hook(request: Request) -> bool:
        if "authorization" not in request.headers:
            raise HTTPException(401, "Sign in first.", headers={"WWW-Authenticate": "Bearer"})
        return request.headers["authorization"] == "Bearer good"

    async def async_hook(request: Request) -> None:
        if request.headers.get("x-user") != "alice":
            raise PermissionError

    for hook in [sync_hook, async_hook]:
        with serve_passthrough(authorize=hook) as base:
            url = "/noukai/flows/hello-world"
            if hook is sync_hook:
                anonymous = post(base, url, {"message": "x"})
                assert anonymous.status_code == 401
                assert anonymous.headers["www-authenticate"] == "Bearer"
                assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
                denied = post(base, url, {"message": "x"}, headers={"Authorization": "Bearer x"})
                allowed = post(base, url, {"message": "x"},
                               headers={"Authorization": "Bearer good"})
            else:
                denied = post(base, url, {"message": "x"}, headers={"X-User": "bob"})
                allowed = post(base, url, {"message": "x"}, headers={"X-User": "alice"})
            assert denied.status_code == 403
            assert denied.json()["error"]["code"] == "FORBIDDEN"
            assert allowed.status_code == 200
    assert len(canned_upstream.requests) == 2


STATUS_CASES = [
    (400, {"detail": {"code": "MISSING_MESSAGE", "message": "need a message"}}, {}, 422,
     "MISSING_MESSAGE"),
    (429, {"detail": {"code": "RATE_LIMIT", "message": "slow down"}}, {"Retry-After": "7"}, 429,
     "RATE_LIMITED"),
    (401, {"detail": {"code": "UNAUTHENTICATED", "message": "bad key nk_test_key"}}, {}, 502,
     "UPSTREAM_CONFIGURATION"),
    (403, {"detail": {"code": "FORBIDDEN", "message": "no"}}, {}, 502, "UPSTREAM_CONFIGURATION"),
    (402, {"detail": {"code": "INSUFFICIENT_CREDITS", "message": "pay"}}, {}, 502,
     "UPSTREAM_CONFIGURATION"),
    (404, {"detail": {"code": "FLOW_NOT_FOUND", "message": "no flow"}}, {}, 502,
     "UPSTREAM_CONFIGURATION"),
    (500, {"detail": {"code": "INTERNAL_ERROR", "message": "Traceback (most recent"}}, {}, 502,
     "FLOW_FAILED"),
]


def test_status_mapping_before_the_first_event(
    canned_upstream: Any, serve_passthrough: Any
) -> None:
    with serve_passthrough() as base:
        for status, body, headers, expected, code in STATUS_CASES:
            canned_upstream.reply = canned_upstream.Reply(status=status, json=body,
                                                          headers=headers)
            response = post(base, "/noukai/flows/hello-world", {"message": "x"})
            assert response.status_code == expected, (status, response.text)
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]["code"] == code
            assert b"nk_" not in response.content and b"Traceback" not in response.content
            if expected == 429:
                assert response.headers["retry-after"] == "7"


def test_timeout_before_first_event_is_504(serve_app: Any, canned_upstream: Any) -> None:
    canned_upstream.reply = canned_upstream.Reply(stall=1.0)
    app = FastAPI(lifespan=noukai_lifespan(
        api_key="nk_test_key", base_url=canned_upstream.base_url, org="acme", project="demo",
        timeout=0.2, max_retries=0))
    app.include_router(flow_stream_router(["hello-world"]), prefix="/noukai")
    with serve_app(app) as base:
        response = post(base, "/noukai/flows/hello-world", {"message": "x"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "UPSTREAM_TIMEOUT"


def test_openapi_lists_the_endpoints(serve_passthrough: Any) -> None:
    flows = ["hello-world", StreamedFlow("local/demo/two-step", name="two")]
    with serve_passthrough(flows=flows) as base:
        schema = httpx.get(f"{base}/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {"/noukai/flows/hello-world", "/noukai/flows/two"}
    post_op = paths["/noukai/flows/hello-world"]["post"]
    body = post_op["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["message"]
    assert "text/event-stream" in post_op["responses"]["200"]["content"]
    assert "get" not in paths["/noukai/flows/hello-world"]


def test_openapi_documents_the_get_form_when_enabled(serve_passthrough: Any) -> None:
    inputs = BrowserInputPolicy(parameters=frozenset({"tone"}))
    with serve_passthrough(allow_get=True, inputs=inputs) as base:
        operation = httpx.get(f"{base}/openapi.json").json()["paths"][
            "/noukai/flows/hello-world"]["get"]
    assert "requestBody" not in operation
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("message", "query"), ("tone", "query")]
    assert "204" in operation["responses"]


def test_script_is_served(serve_passthrough: Any) -> None:
    with serve_passthrough() as base:
        response = httpx.get(f"{base}/noukai/noukai-stream.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert b"export function streamFlow" in response.content


def test_a_router_without_lifespan_uses_a_client_from_the_environment(
    serve_app: Any, canned_upstream: Any, monkeypatch: pytest.MonkeyPatch, sse_frames: Any
) -> None:
    monkeypatch.setenv("NOUKAI_API_KEY", "nk_from_env")
    monkeypatch.setenv("NOUKAI_BASE_URL", canned_upstream.base_url)
    app = FastAPI()  # no noukai_lifespan, no client=
    app.include_router(flow_stream_router(["acme/demo/hello-world"]), prefix="/noukai")
    # served twice: the router closes its client at shutdown, and the
    # restarted app builds a fresh one instead of using the closed one
    for _ in range(2):
        with serve_app(app) as base:
            response = post(base, "/noukai/flows/hello-world", {"message": "hi"})
        assert response.status_code == 200, response.text
        assert sse_frames(response.content)[-1][0] == "flow_completed"
    keys = [{k.lower(): v for k, v in headers.items()}["authorization"]
            for _, _, headers, _ in canned_upstream.requests]
    assert keys == ["Bearer nk_from_env"] * 2
