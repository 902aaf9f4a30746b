"""The optional OpenAI-compatible provider, against a real local socket server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from devserver_helpers import Api

from noukai_devserver.pytest_plugin import DevServer


class _ChatCompletions(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "body": body})
        if body.get("tools") and not any(m["role"] == "tool" for m in body["messages"]):
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_remote1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"Oslo\"}"}}]}
        else:
            message = {"role": "assistant", "content": "remote answer"}
        payload = json.dumps({"choices": [{"message": message}],
                              "usage": {"prompt_tokens": 11, "completion_tokens": 7}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


OVERRIDE = {"blockOverrides": {"respond": {"model": "openai/test-model"}}}


def test_openai_models_call_the_configured_endpoint(
        provider_url: str, noukai_devserver_factory: Callable[..., DevServer]) -> None:
    server = noukai_devserver_factory(openai_base_url=provider_url)
    api = Api(server)
    body = api.execute("hello-world", {"message": "hi", **OVERRIDE}).json()
    assert body["result"] == {"response": "remote answer"}
    sent = _ChatCompletions.seen[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "test-model"
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "hi"}
    trace = api.get(f"/seq/local/demo/hello-world/runs/{body['executionId']}/trace").json()
    assert trace["steps"][0]["tokens"] == {"prompt": 11, "completion": 7, "total": 18}
    assert trace["steps"][0]["modelUsed"] == "openai/test-model"
    tool = {"type": "function", "function": {"name": "get_weather"}}
    paused = api.execute("tools-enabled", {
        "message": "weather?", "tools": [tool],
        "blockOverrides": {"weather": {"model": "openai/test-model"}}}).json()
    assert paused["toolCalls"][0]["id"] == "call_remote1"
    done = api.execute("tools-enabled", {
        "executionId": paused["executionId"], "pausedAtStep": "weather", "tools": [tool],
        "iterationsUsed": 1, "blockOverrides": {"weather": {"model": "openai/test-model"}},
        "toolCallMessages": paused["toolCallMessages"] + [
            {"role": "tool", "toolCallId": "call_remote1", "content": "cold"}]}).json()
    assert done["result"] == {"response": "remote answer"}
    assert _ChatCompletions.seen[-1]["body"]["messages"][-1] == {
        "role": "tool", "content": "cold", "tool_call_id": "call_remote1"}
    api.close()
    server.stop()


def test_without_configuration_or_reachable_endpoint_the_block_fails(
        api: Api, noukai_devserver_factory: Callable[..., DevServer]) -> None:
    body = api.execute("hello-world", {"message": "hi", **OVERRIDE}).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "PROVIDER_NOT_CONFIGURED"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    server = noukai_devserver_factory(openai_base_url=f"http://127.0.0.1:{closed_port}/v1")
    client = Api(server)
    failed = client.execute("hello-world", {"message": "hi", **OVERRIDE}).json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "PROVIDER_ERROR"
    client.close()
    server.stop()
