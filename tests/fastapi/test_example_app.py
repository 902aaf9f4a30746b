"""The example app: its API route, its page, and `python -m example_apps.fastapi_app`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from example_apps.fastapi_app.app import create_app


@pytest.fixture
def example_base(serve_app: Any, noukai_devserver: Any,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOUKAI_API_KEY", noukai_devserver.api_key)
    monkeypatch.setenv("NOUKAI_BASE_URL", noukai_devserver.base_url)
    with serve_app(create_app()) as base:
        yield base


def test_two_flows_in_one_request_share_one_session(
    example_base: str, noukai_devserver: Any
) -> None:
    response = httpx.post(f"{example_base}/api/two-flows", json={"message": "hi"}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    session = response.headers["x-noukai-session"]
    assert body["session_id"] == session
    recorded = httpx.get(f"{noukai_devserver.base_url}/seq/sessions/{session}",
                         headers={"Authorization": f"Bearer {noukai_devserver.api_key}"}).json()
    assert [(e["slug"], e["executionId"]) for e in recorded["executions"]] == [
        ("hello-world", body["hello_world"]["execution_id"]),
        ("two-step", body["two_step"]["execution_id"]),
    ]


def test_cors_exposes_the_session_header(example_base: str) -> None:
    response = httpx.post(f"{example_base}/api/two-flows", json={},
                          headers={"Origin": "http://localhost:8000"}, timeout=30)
    assert response.headers["access-control-expose-headers"] == "X-Noukai-Session"
    assert response.headers["x-noukai-session"]


def test_page_and_script_are_served(example_base: str) -> None:
    page = httpx.get(f"{example_base}/")
    assert page.status_code == 200
    assert 'import { streamFlow } from "/noukai/noukai-stream.js"' in page.text
    assert httpx.get(f"{example_base}/noukai/noukai-stream.js").status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, process: subprocess.Popen[bytes],
                       startup_limit: float = 30.0) -> httpx.Response:
    """The first response from `url`, polling while the process starts.

    The limit only bounds how long a broken start can hang the suite; how
    fast the app starts is not under test.
    """
    give_up = time.monotonic() + startup_limit
    while True:
        try:
            return httpx.get(url)
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(f"the example app exited with {process.returncode}") from None
            if time.monotonic() > give_up:
                raise RuntimeError("the example app never answered") from None
            time.sleep(0.1)


def test_runs_as_a_module(noukai_devserver: Any) -> None:
    port = free_port()
    env = {**os.environ, "NOUKAI_API_KEY": noukai_devserver.api_key,
           "NOUKAI_BASE_URL": noukai_devserver.base_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "example_apps.fastapi_app", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        response = wait_until_serving(f"http://127.0.0.1:{port}/", process)
        assert response.status_code == 200
        assert "Run a Noukai flow, live" in response.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_defaults_to_loopback_port_8000() -> None:
    from example_apps.fastapi_app.__main__ import build_parser

    args = build_parser().parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def test_defaults_to_the_local_dev_server(
    serve_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ["NOUKAI_API_KEY", "NOUKAI_BASE_URL", "NOUKAI_ORG", "NOUKAI_PROJECT"]:
        monkeypatch.delenv(name, raising=False)
    app = create_app()
    with serve_app(app):
        client = app.state.noukai
        assert client.base_url == "http://127.0.0.1:8080/api/v1"
        assert (client.default_org, client.default_project) == ("local", "demo")
