"""Capture modes decide which snapshots are stored (contract §11.3)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from noukai_devserver.pytest_plugin import DevServer

SECRET_MESSAGE = ("my key is sk-abcdef1234567890 and nk_live_abcdefgh, "
                  "Authorization: Bearer abc.def.ghi, mail me at jane.doe@example.com")


def _run(server: DevServer, project: str, slug: str, message: str, trace: bool = False,
         org: str = "other") -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    sid = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer nk_{org}_key"}
    body = httpx.post(f"{server.base_url}/seq/{org}/{project}/{slug}/execute",
                      json={"message": message, "trace": trace},
                      headers={**headers, "X-Session-Id": sid}).json()
    trace_body = httpx.get(
        f"{server.base_url}/seq/{org}/{project}/{slug}/runs/{body['executionId']}/trace",
        headers=headers).json()
    session = httpx.get(f"{server.base_url}/seq/sessions/{sid}", headers=headers).json()
    return body, trace_body, session["executions"][0]


def test_full_mode_stores_verbatim_snapshots(custom_server: DevServer) -> None:
    body, trace, execution = _run(custom_server, "app", "hello", "plain words")
    assert trace["steps"][0]["inputContext"]["prompt"] == "plain words"
    assert trace["steps"][0]["outputContext"] == body["result"]
    assert execution["traceCaptureMode"] == "full" and execution["snapshotsAvailable"]


def test_redacted_mode_masks_secrets_in_inputs_but_keeps_outputs(
        custom_server: DevServer) -> None:
    body, trace, execution = _run(custom_server, "app", "redacted", SECRET_MESSAGE)
    stored_input = trace["steps"][0]["inputContext"]["prompt"]
    for secret in ("sk-abcdef1234567890", "nk_live_abcdefgh", "abc.def.ghi",
                   "jane.doe@example.com"):
        assert secret not in stored_input
    assert "[REDACTED]" in stored_input and "my key is" in stored_input
    assert execution["traceCaptureMode"] == "redacted" and execution["snapshotsAvailable"]
    assert execution["steps"][-1]["outputSnapshot"] == body["result"]
    assert "jane.doe@example.com" not in str(execution["steps"][-1]["inputSnapshot"])


def test_metadata_only_project_keeps_no_snapshots(custom_server: DevServer) -> None:
    _body, trace, execution = _run(custom_server, "secret", "hello", "hidden")
    step = trace["steps"][0]
    assert step["inputContext"] is None and step["outputContext"] is None
    assert step["tokens"]["total"] > 0 and step["status"] == "completed"
    assert execution["snapshotsAvailable"] is False
    assert execution["traceCaptureMode"] == "metadata_only"
    assert execution["steps"][0]["outputSnapshot"] is None


def test_an_orgs_mode_applies_to_its_projects_unless_a_project_sets_its_own(
        custom_server: DevServer) -> None:
    _body, trace, execution = _run(custom_server, "app", "hello", "inherited", org="quiet")
    assert execution["traceCaptureMode"] == "metadata_only"
    assert trace["steps"][0]["outputContext"] is None
    body, trace, execution = _run(custom_server, "loud", "hello", "own mode", org="quiet")
    assert execution["traceCaptureMode"] == "full"
    assert trace["steps"][0]["outputContext"] == body["result"]


def test_off_mode_keeps_nothing_per_block(custom_server: DevServer) -> None:
    body, trace, execution = _run(custom_server, "app", "off", "nothing")
    assert body["status"] == "completed"
    assert trace["steps"] == []
    assert execution["snapshotsAvailable"] is False and execution["steps"] == []


def test_trace_true_forces_full_for_that_run(custom_server: DevServer) -> None:
    body, trace, execution = _run(custom_server, "app", "off", "forced", trace=True)
    assert execution["traceCaptureMode"] == "full"
    assert trace["steps"][0]["outputContext"] == body["result"]


def test_oversized_snapshots_are_truncated_and_marked(custom_server: DevServer) -> None:
    _body, trace, execution = _run(custom_server, "app", "hello", "long " * 2000)
    step = trace["steps"][0]
    assert step["truncated"] is True
    assert step["inputSizeBytes"] > 4000
    assert execution["steps"][0]["truncated"] is True
