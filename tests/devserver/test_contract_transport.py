"""Contract checks, part 5: transport edges the demo fixture alone cannot show.

Both loopback families (item 1, through the real `noukai-dev` command on a
free port), JSON error bodies for requests no route serves (§1.4), 429 with
an integer `Retry-After` (item 5, through a workspace with a rate-limited
key), the step re-run guard (§7.2) and both attachment spellings (§4.1).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_contract_sse_parser import (
    check_error,
    execute_body,
    flow_path,
    open_client,
    read_stream,
    step_body,
)

from noukai_devserver.pytest_plugin import DevServer

_LISTENING = re.compile(r"listening on .*127\.0\.0\.1:(\d+)")


@pytest.fixture
def client(noukai_devserver: DevServer) -> Iterator[httpx.Client]:
    with open_client(noukai_devserver.base_url, noukai_devserver.api_key) as c:
        yield c


def test_localhost_serves_both_loopback_families(tmp_path: Path) -> None:
    """Item 1 / §1.1: `--host localhost` answers on 127.0.0.1 and on ::1."""
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "noukai_devserver", "--host", "localhost", "--port", "0",
             "--db", str(tmp_path / "db.sqlite3")],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _LISTENING.search(log.read_text()) and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        match = _LISTENING.search(log.read_text())
        assert match, log.read_text()
        for host in ("127.0.0.1", "[::1]"):
            with open_client(f"http://{host}:{match.group(1)}/api/v1", "nk_local_dev") as c:
                response = c.post(flow_path("hello-world", "execute"), json=execute_body("hi"))
            assert response.status_code == 200, (host, response.text)
    finally:
        process.terminate()
        process.wait(15)


def test_unrouted_requests_still_get_json_errors(client: httpx.Client) -> None:
    """§1.4: every non-streaming response, errors included, has the JSON envelope."""
    responses = [
        client.get("/no/such/route"),
        client.get(flow_path("hello-world", "execute")),
        client.post(flow_path("hello-world", "execute"),
                    content=b'{"message":"' + b"x" * 5_000_000 + b'"}'),
    ]
    for response in responses:
        assert response.status_code >= 400
        check_error(response, response.status_code)


def test_step_rerun_guard_ends_a_client_loop(client: httpx.Client) -> None:
    """§7.2 SHOULD: more than 20 re-runs of one cursor → 409 STEP_RERUN_LIMIT."""
    first = read_stream(client, "POST", flow_path("two-step", "step"), step_body("loop"))
    execution_id = first.events[0]["executionId"]
    cursor = step_body(None, step_index=0, execution_id=execution_id)
    statuses = [client.post(flow_path("two-step", "step"), json=cursor).status_code
                for _ in range(20)]
    assert statuses == [200] * 20
    check_error(client.post(flow_path("two-step", "step"), json=cursor),
                409, "STEP_RERUN_LIMIT")
    draft = next(e["output"] for e in first.events if e["eventType"] == "step_completed")
    onward = step_body(None, step_index=1, execution_id=execution_id,
                       outputs={"draft": draft})
    assert read_stream(client, "POST", flow_path("two-step", "step"),
                       onward).types[-1] == "flow_completed"


def test_attachments_accept_both_mime_type_spellings(client: httpx.Client) -> None:
    attachments = [{"url": "https://example.test/a.png", "mimeType": "image/png"},
                   {"url": "https://example.test/b.png", "mime_type": "image/png"}]
    response = client.post(flow_path("hello-world", "execute"),
                           json=execute_body("see these", attachments=attachments))
    assert response.status_code == 200 and response.json()["status"] == "completed"


@pytest.fixture(scope="module")
def limited(noukai_devserver_factory: Callable[..., DevServer],
            tmp_path_factory: pytest.TempPathFactory) -> DevServer:
    root = tmp_path_factory.mktemp("contract-limited")
    (root / "noukai.yaml").write_text(
        "orgs:\n  alpha: {credits: unlimited, projects: {app: {}}}\n"
        "keys:\n  nk_limited: {org: alpha, rateLimit: 2}\n")
    (root / "flows" / "alpha" / "app").mkdir(parents=True)
    (root / "flows" / "alpha" / "app" / "hello.yaml").write_text(
        "blocks:\n  - {id: respond, type: llm, model: local/echo-1, prompt: \"{{message}}\"}\n")
    return noukai_devserver_factory(root, rate_limit_window=30.0)


def test_rate_limit_is_429_with_integer_retry_after(limited: DevServer) -> None:
    """Item 5: 429 RATE_LIMIT, `Retry-After` a whole number of seconds, JSON body."""
    with open_client(limited.base_url, "nk_limited") as c:
        responses = [c.post(flow_path("hello", "execute", "alpha", "app"),
                            json=execute_body("hi")) for _ in range(4)]
    assert [r.status_code for r in responses[:2]] == [200, 200]
    refused = responses[-1]
    check_error(refused, 429, "RATE_LIMIT")
    assert re.fullmatch(r"\d+", refused.headers["retry-after"]), refused.headers
