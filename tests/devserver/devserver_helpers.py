"""Helpers for the dev server tests: HTTP clients and a strict SSE reader.

Test modules import this module by name: conftest puts this directory on
sys.path (pytest runs with --import-mode=importlib).

The SSE reader is deliberately strict (LF-only, `\\n\\n`-terminated frames,
`event:` equal to `eventType`, compact one-line JSON) so a framing slip in the
server fails a test here before it fails an SDK.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from noukai_devserver.pytest_plugin import DevServer


@dataclass
class Frame:
    event: str | None
    data: dict[str, Any] | None
    id: int | None = None
    comments: list[str] = field(default_factory=list)


def parse_sse(raw: bytes) -> list[Frame]:
    """Parse a complete SSE body, asserting the contract's framing rules."""
    text = raw.decode("utf-8")
    assert "\r" not in text, "CR in an SSE stream"
    if not text:
        return []
    assert text.endswith("\n\n"), "the last frame is not terminated by a blank line"
    frames = []
    for block in text[:-2].split("\n\n"):
        event = data = eid = None
        comments = []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                assert data is None, "more than one data line"
                data = json.loads(line[len("data: "):])
            elif line.startswith("id: "):
                eid = int(line[len("id: "):])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        if data is not None:
            assert event == data["eventType"], "event: line differs from eventType"
            assert isinstance(data.get("executionId"), str) and data["executionId"]
        frames.append(Frame(event, data, eid, comments))
    return frames


def events(frames: list[Frame]) -> list[dict[str, Any]]:
    """Only the data frames, in order."""
    return [f.data for f in frames if f.data is not None]


class Api:
    """A thin httpx wrapper: flow paths, auth header, SSE posting."""

    def __init__(self, server: DevServer, key: str | None = None) -> None:
        self.server = server
        self.key = key or server.api_key
        self.http = httpx.Client(base_url=server.base_url, timeout=30.0,
                                 headers={"Authorization": f"Bearer {self.key}"})

    def flow(self, slug: str, suffix: str, org: str = "local", project: str = "demo") -> str:
        return f"/seq/{org}/{project}/{slug}/{suffix}"

    def execute(self, slug: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.http.post(self.flow(slug, "execute"), json=body, **kw)

    def step(self, slug: str, body: dict[str, Any], **kw: Any) -> tuple[httpx.Response,
                                                                       list[Frame]]:
        response = self.http.post(self.flow(slug, "step"), json=body, **kw)
        frames = parse_sse(response.content) if response.status_code == 200 else []
        return response, frames

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def close(self) -> None:
        self.http.close()


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, every: float = 0.02) -> Any:
    """Poll until `condition()` is truthy; return its value (fails on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met before the deadline")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's envelope, exactly, with a request id."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert body["detail"]["code"] == code
    assert isinstance(body["detail"]["message"], str) and body["detail"]["message"]
    assert response.headers.get("x-request-id")
    assert "Traceback" not in response.text and "nk_" not in response.text
    return body
