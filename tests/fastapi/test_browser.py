"""Headless Chromium on the example page: live rendering, and abort through the JS module.

Debian's chromium at /usr/bin/chromium, driven by Playwright's Python package;
if it is missing these tests fail (they never skip).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.sync_api import Browser, Page, expect, sync_playwright

from example_apps.fastapi_app.app import create_app
from noukai_core import Noukai
from noukai_fastapi import flow_stream_router, noukai_lifespan

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def example_url(serve_app: Any, slow_devserver: Any,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOUKAI_API_KEY", slow_devserver.api_key)
    monkeypatch.setenv("NOUKAI_BASE_URL", slow_devserver.base_url)
    with serve_app(create_app(heartbeat_interval=0.1)) as base_url:
        yield base_url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def run_status(devserver: Any, execution_id: str) -> str:
    with Noukai(api_key=devserver.api_key, base_url=devserver.base_url,
                org=devserver.org, project=devserver.project) as client:
        return client.flow("slow-steps").run(execution_id).trace().flow_run.status


def test_steps_render_live_then_the_final_result(page: Page, example_url: str) -> None:
    page.goto(example_url + "/")
    page.select_option("#flow", "slow-steps")
    page.fill("#message", "a lighthouse keeper")
    page.click("#run")
    first = page.locator('li.step[data-step-id="first"]')
    expect(first).to_be_visible(timeout=10_000)
    # the run is still going: the first step is on screen, the result is not
    assert page.locator("#result").count() == 0
    expect(page.locator("#result")).to_be_visible(timeout=20_000)
    names = page.locator("li.step .step-name").all_inner_texts()
    assert names == ["First", "Second", "Third"]
    statuses = [s.get_attribute("data-status") for s in page.locator("li.step").all()]
    assert statuses == ["completed"] * 3
    assert page.locator("#result pre").inner_text().strip() != ""
    assert "ms" in page.locator('li.step[data-step-id="third"] .timing').inner_text()
    expect(page.locator("#error")).to_be_hidden()


def test_partial_output_is_rendered_before_the_step_completes(
    page: Page, example_url: str
) -> None:
    page.goto(example_url + "/")
    # Record every text the step's output box shows, in order (a mutation
    # record keeps the text node it added even after later ones replace it).
    page.evaluate(
        """() => {
            window.outputTexts = [];
            new MutationObserver((records) => {
                for (const record of records) {
                    if (!record.target.classList || !record.target.classList.contains("output")) {
                        continue;
                    }
                    for (const node of record.addedNodes) window.outputTexts.push(node.textContent);
                }
            }).observe(document.getElementById("timeline"), { childList: true, subtree: true });
        }"""
    )
    page.select_option("#flow", "stream-story")
    page.fill("#message", "a lighthouse keeper")
    page.click("#run")
    expect(page.locator("#result")).to_be_visible(timeout=20_000)
    texts = [json.loads(text)["response"] for text in page.evaluate("window.outputTexts")]
    final = json.loads(page.locator('li.step[data-step-id="story"] .output').inner_text())
    assert texts[-1] == final["response"]
    partials = texts[:-1]
    # several partial outputs, each growing the one before, all before the final one
    assert len(partials) >= 2
    for shorter, longer in itertools.pairwise(partials):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert final["response"].startswith(partials[-1])


def test_abort_through_the_js_module_cancels_the_run(
    page: Page, example_url: str, slow_devserver: Any
) -> None:
    page.goto(example_url + "/")
    outcome = page.evaluate(
        """() => new Promise((resolve) => {
            let executionId = null;
            const run = window.noukaiStreamFlow("/noukai/flows/slow-steps", {
                message: "abort me",
                on: {
                    run_started: (data) => { executionId = data.executionId; },
                    step_started: () => run.abort(),
                },
            });
            run.done.then((result) => resolve({executionId, status: result.status}));
        })"""
    )
    assert outcome["status"] == "aborted"
    deadline = time.monotonic() + 20
    status = run_status(slow_devserver, outcome["executionId"])
    while status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
        status = run_status(slow_devserver, outcome["executionId"])
    assert status == "cancelled"


def test_stop_button_and_errors_are_shown(page: Page, example_url: str) -> None:
    page.goto(example_url + "/")
    page.select_option("#flow", "slow-steps")
    page.click("#run")
    expect(page.locator('li.step[data-step-id="first"]')).to_be_visible(timeout=10_000)
    page.click("#stop")
    expect(page.locator("#status")).to_have_text("Stopped.")
    page.fill("#message", "x" * 2_001)  # over the example's 2 000-character limit
    page.click("#run")
    expect(page.locator("#error")).to_contain_text("422 MESSAGE_TOO_LONG")


def test_js_parser_handles_any_chunking_and_line_ending(page: Page, example_url: str) -> None:
    page.goto(example_url + "/")
    results = page.evaluate(
        """async () => {
            const { SSEParser } = await import("/noukai/noukai-stream.js");
            const stream = ": keepalive\\n\\nevent: step_output\\nid: 1\\ndata: {\\"a\\":1}\\n\\n"
                + "data: line one\\ndata: line two\\n\\n"
                + "event: flow_completed\\ndata: {\\"result\\":\\"é\\"}\\n\\n";
            const out = {};
            for (const [name, eol] of [["lf", "\\n"], ["crlf", "\\r\\n"], ["cr", "\\r"]]) {
                const text = stream.replaceAll("\\n", eol);
                const seen = new Set();
                for (let cut = 0; cut <= text.length; cut++) {
                    const frames = [];
                    const parser = new SSEParser((f) => frames.push([f.type, f.data, f.id]));
                    parser.feed(text.slice(0, cut));
                    parser.feed(text.slice(cut), true);
                    seen.add(JSON.stringify(frames));
                }
                out[name] = [...seen];
            }
            return out;
        }"""
    )
    # `id` is each frame's own id (null when it has none), unlike EventSource's
    # sticky lastEventId: our server writes ids only on real events
    expected = ('[["step_output","{\\"a\\":1}","1"],["message","line one\\nline two",null],'
                '["flow_completed","{\\"result\\":\\"é\\"}",null]]')
    for eol in ["lf", "crlf", "cr"]:
        assert results[eol] == [expected], eol


def test_js_module_reports_errors_before_and_after_the_stream_starts(
    page: Page, serve_app: Any, canned_upstream: Any
) -> None:
    upstream = canned_upstream
    upstream.replies = [
        # refused before any event: a real status and JSON body
        upstream.Reply(status=429, json={"detail": {"code": "RATE_LIMIT", "message": "wait"}},
                       headers={"Retry-After": "3"}),
        # the upstream connection drops mid-run: the passthrough's final `error` event
        upstream.Reply(frames=upstream.run_frames(2, extra=False), drop_after=2),
        # a step fails: its `step_error` ends the run
        upstream.Reply(frames=upstream.run_frames(2, extra=False, fail_at=0)),
    ]
    app = FastAPI(lifespan=noukai_lifespan(api_key="nk_test_key", base_url=upstream.base_url,
                                           org="acme", project="demo", max_retries=0))
    app.include_router(flow_stream_router(["hello-world"]), prefix="/noukai")

    @app.get("/")
    async def blank() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>blank</title>")

    with serve_app(app) as base:
        page.goto(base + "/")
        outcomes = page.evaluate(
            """async () => {
                const { streamFlow } = await import("/noukai/noukai-stream.js");
                const outcomes = [];
                for (let i = 0; i < 3; i++) {
                    const seen = [];
                    const errors = [];
                    const run = streamFlow("/noukai/flows/hello-world", {
                        message: "x",
                        onEvent: (type) => seen.push(type),
                        onError: (error) => errors.push(error),
                    });
                    const done = await run.done;
                    outcomes.push({ seen, errors, done });
                }
                return outcomes;
            }"""
        )
    limited, dropped, failed = outcomes
    assert limited["seen"] == []
    assert [(e["status"], e["code"]) for e in limited["errors"]] == [(429, "RATE_LIMITED")]
    assert limited["done"]["status"] == "error"
    assert dropped["seen"] == ["run_started", "step_started"]
    assert len(dropped["errors"]) == 1 and dropped["errors"][0]["status"] == 200
    assert dropped["errors"][0]["code"] != "STREAM_INCOMPLETE"  # the server's error event
    assert dropped["done"] == {"status": "error", "error": dropped["errors"][0]}
    assert failed["seen"][-1] == "step_error"
    assert [e["code"] for e in failed["errors"]] == ["PROVIDER_ERROR"]
    assert failed["done"]["status"] == "error"
