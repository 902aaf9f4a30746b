"""Contract checks, part 5: transport edges the demo fixture alone cannot show.

Both loopback families (item 1, through the real `noukai-dev` command on a
free port), JSON error bodies for requests no route serves (§1.4), 429 with
an integer `Retry-After` (item 5, through a workspace with a rate-limited
key), the step re-run guard (§7.2) and both attachment spellings (§4.1).
"""

from __future__ import annotations

import re
import socket
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


def _has_ipv6_loopback() -> bool:
    """Whether this host can bind ::1 at all (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_localhost_serves_both_loopback_families(tmp_path: Path) -> None:
    """Item 1 / §1.1: `--host localhost` answers on 127.0.0.1 and on ::1 (where the
    host has an IPv6 loopback at all)."""
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
        for host in ["127.0.0.1"] + (["[::1]"] if _has_ipv6_loopback() else []):
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


def _one_block(prompt: str) -> str:
    return ("blocks:\n  - {id: respond, name: Respond, type: llm, model: local/echo-1, "
            f"prompt: \"{prompt} {{{{message}}}}\"}}\n")


def _two_blocks(second_prompt: str) -> str:
    return ("blocks:\n"
            "  - {id: one, name: One, type: llm, model: local/echo-1, prompt: \"{{message}}\"}\n"
            f"  - {{id: two, name: Two, type: llm, model: local/echo-1, "
            f"prompt: \"{second_prompt}\"}}\n")


@pytest.fixture(scope="module")
def versioned(noukai_devserver_factory: Callable[..., DevServer],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[DevServer, Path]:
    """A workspace whose flow `greet` has published v1 ("V1") and a newer draft."""
    root = tmp_path_factory.mktemp("contract-versions")
    (root / "noukai.yaml").write_text(
        "orgs:\n  alpha: {credits: unlimited, capture: full, projects: {app: {}}}\n"
        "keys:\n  nk_alpha: {org: alpha}\n")
    flows = root / "flows" / "alpha" / "app"
    flows.mkdir(parents=True)
    (flows / "greet.yaml").write_text(_one_block("V1"))
    (flows / "Mixed_Case.slug-1.yaml").write_text(_one_block("MIXED"))
    (flows / "pinned.yaml").write_text(_two_blocks("OLD {{one.response}}"))
    (flows / "free.yaml").write_text(
        "blocks:\n  - {id: only, name: Only, type: template, template: {x: \"{{message}}\"}}\n")
    db = root / "noukai.sqlite3"
    subprocess.run([sys.executable, "-m", "noukai_devserver", "publish", "alpha/app/greet",
                    "--workspace", str(root), "--db", str(db)], check=True,
                   capture_output=True, timeout=60)
    (flows / "greet.yaml").write_text(_one_block("DRAFT"))
    return noukai_devserver_factory(root, db=db), flows


def test_base_path_runs_production_v0_the_draft_vn_that_version(
        versioned: tuple[DevServer, Path]) -> None:
    """§2 / item 7: base = published, /v0 = live draft, /v1 = v1, /v2 = 404."""
    server, _ = versioned
    with open_client(server.base_url, "nk_alpha") as c:
        def result(prefix: str) -> str:
            response = c.post(flow_path("greet", f"{prefix}execute", "alpha", "app"),
                              json=execute_body("hi"))
            assert response.status_code == 200, response.text
            return str(response.json()["result"])
        assert "V1" in result("") and "V1" in result("v1/")
        assert "DRAFT" in result("v0/")
        check_error(c.post(flow_path("greet", "v2/execute", "alpha", "app"),
                           json=execute_body("hi")), 404, "VERSION_NOT_FOUND")
        steps = read_stream(c, "POST", flow_path("greet", "v1/step", "alpha", "app"),
                            step_body("hi"))
        assert "V1" in str(steps.events[-1]["result"])
        check_error(c.post(flow_path("greet", "v0/step", "alpha", "app"),
                           json=step_body("hi")), 400, "INVALID_VERSION")


def test_slug_with_dots_underscores_and_capitals(versioned: tuple[DevServer, Path]) -> None:
    """§1.1 SHOULD: slugs matching [A-Za-z0-9._-]+ are served."""
    server, _ = versioned
    with open_client(server.base_url, "nk_alpha") as c:
        response = c.post(flow_path("Mixed_Case.slug-1", "execute", "alpha", "app"),
                          json=execute_body("hi"))
    assert response.status_code == 200, response.text
    assert "MIXED" in str(response.json()["result"])


def test_flow_edited_mid_run_is_pinned_or_stale(versioned: tuple[DevServer, Path]) -> None:
    """§7.2: a definition changed since the run began: pinned (SHOULD) or 409 STALE_TREE;
    never the new definition silently applied to the old run."""
    server, flows = versioned
    path = flow_path("pinned", "step", "alpha", "app")
    with open_client(server.base_url, "nk_alpha") as c:
        first = read_stream(c, "POST", path, step_body("go"))
        outputs = {"one": first.events[-2]["output"]}
        (flows / "pinned.yaml").write_text(_two_blocks("NEW {{one.response}}"))
        cursor = step_body(None, step_index=1, execution_id=first.events[0]["executionId"],
                           outputs=outputs)
        reply = read_stream(c, "POST", path, cursor)
        if reply.response.status_code == 409:
            check_error(reply.response, 409, "STALE_TREE")
        else:
            assert reply.response.status_code == 200, reply.raw
            assert "OLD" in str(reply.events[-1]["result"]), reply.events[-1]


def test_running_out_of_credits_is_a_typed_error(
        noukai_devserver_factory: Callable[..., DevServer], tmp_path: Path) -> None:
    """§13: a spent balance ends in 402 INSUFFICIENT_CREDITS / CREDITS_EXHAUSTED, or an
    in-band step_error with CREDITS_EXHAUSTED; never a malformed reply."""
    (tmp_path / "noukai.yaml").write_text(
        "orgs:\n  alpha: {credits: \"0.000030\", projects: {app: {}}}\n"
        "keys:\n  nk_alpha: {org: alpha}\n")
    (tmp_path / "flows" / "alpha" / "app").mkdir(parents=True)
    (tmp_path / "flows" / "alpha" / "app" / "greet.yaml").write_text(_one_block("spend"))
    server = noukai_devserver_factory(tmp_path)
    codes: list[str] = []
    with open_client(server.base_url, "nk_alpha") as c:
        for _ in range(30):
            reply = read_stream(c, "POST", flow_path("greet", "step", "alpha", "app"),
                                step_body("a fairly long message to cost something"))
            if reply.response.status_code != 200:
                check_error(reply.response, 402)
                codes.append(reply.response.json()["detail"]["code"])
                break
            if reply.types[-1] == "step_error":
                codes.append(reply.events[-1]["error"]["code"])
    server.stop()
    assert codes and set(codes) <= {"INSUFFICIENT_CREDITS", "CREDITS_EXHAUSTED"}, codes


def test_ts_style_first_step_with_explicit_nulls(client: httpx.Client) -> None:
    """§1.4: every null field of a TS first /step call acts as absent."""
    body = {"executionId": None, "stepIndex": 0, "message": "hi", "accumulatedOutputs": None,
            "parameters": None, "attachments": None, "tools": None, "toolChoice": None,
            "toolCallMessages": None, "blockOverrides": None, "inputOverrides": None,
            "runRemaining": None, "iterationsUsed": None, "trace": None}
    reply = read_stream(client, "POST", flow_path("two-step", "step"), body)
    assert reply.response.status_code == 200, reply.raw
    assert reply.types[0] == "run_started" and reply.types[-1] == "step_paused"


@pytest.mark.parametrize("route,body", [
    ("execute", {"message": "hi", "parameters": [1]}),
    ("execute", {"message": 5}),
    ("execute", [1, 2]),
    ("step", {"stepIndex": "1", "message": "hi"}),
    ("jobs", {"message": "hi", "trace": "yes"}),
])
def test_wrongly_typed_fields_are_4xx_json_errors(client: httpx.Client, route: str,
                                                  body: object) -> None:
    """§13 VALIDATION_ERROR (any 4xx is accepted by the SDKs): never a 5xx or a stream."""
    response = client.post(flow_path("hello-world", route), json=body)
    assert 400 <= response.status_code < 500, response.text
    check_error(response, response.status_code)


def test_any_string_session_id_is_accepted_but_not_fetchable(client: httpx.Client) -> None:
    """§1.2: a user-supplied X-Session-Id may be any string; §11.2: fetches need a UUID."""
    response = client.post(flow_path("hello-world", "execute"), json=execute_body("hi"),
                           headers={"X-Session-Id": "my own session #1"})
    assert response.status_code == 200, response.text
    check_error(client.get("/seq/sessions/my-own-session-1"), 400, "INVALID_SESSION_ID")


def test_line_breaks_and_non_ascii_survive_the_framing(client: httpx.Client) -> None:
    """§6.1: CR/LF inside values never break LF-only one-line frames; UTF-8 round trip."""
    message = "a\r\nb\n\nc \u2028 \u00e9 \U0001f327"
    reply = read_stream(client, "POST", flow_path("hello-world", "step"),
                        step_body(message, run_remaining=True))
    assert reply.types[-1] == "flow_completed"
    assert message in reply.events[-1]["result"]["response"]


@pytest.mark.parametrize("path,body,status,code", [
    ("/seq/broke/demo/nope/execute", {"message": "hi"}, 404, "FLOW_NOT_FOUND"),
    ("/seq/broke/demo/hello-world/v9/execute", {"message": "hi"}, 404, "VERSION_NOT_FOUND"),
    ("/seq/broke/demo/hello-world/v0/step", {"stepIndex": 0, "message": "hi"}, 400,
     "INVALID_VERSION"),
    ("/seq/broke/demo/hello-world/execute", {}, 400, "MISSING_MESSAGE"),
    ("/seq/broke/demo/hello-world/jobs", {}, 400, "MISSING_MESSAGE"),
])
def test_recommended_check_order_puts_credits_last(noukai_devserver: DevServer, path: str,
                                                   body: dict[str, object], status: int,
                                                   code: str) -> None:
    """§1.6 [recommended]: resolve flow + version → validate body → credit check, so a
    zero-balance org sees the request's own problem before its 402."""
    with open_client(noukai_devserver.base_url, noukai_devserver.broke_api_key) as c:
        check_error(c.post(path, json=body), status, code)


def test_zero_cost_stays_fixed_point(versioned: tuple[DevServer, Path]) -> None:
    """§1.4: a run that costs nothing still reports costUsd (where sent) as a fixed-point
    string ("0.000000"), never "0E-6" (what a quantized zero Decimal prints)."""
    server, _ = versioned
    with open_client(server.base_url, "nk_alpha") as c:
        reply = read_stream(c, "POST", flow_path("free", "step", "alpha", "app"),
                            step_body("x", run_remaining=True))  # read_stream checks §6.3
        assert reply.types[-1] == "flow_completed"
        execution_id = reply.events[0]["executionId"]
        run = c.get(flow_path("free", f"runs/{execution_id}/trace", "alpha", "app")).json()
    costs = [reply.events[-1].get("summary", {}).get("costUsd"), run["flowRun"].get("costUsd"),
             *(step.get("costUsd") for step in run["steps"])]
    for cost in costs:
        assert cost is None or re.fullmatch(r"\d+\.\d+|\d+", cost), cost
