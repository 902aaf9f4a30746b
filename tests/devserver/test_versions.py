"""Version routing by path and `noukai-dev publish` (contract §2, issue 3 item 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devserver_helpers import Api, assert_error, wait_for

from noukai_devserver.pytest_plugin import DevServer

FLOW = """
message: required
blocks:
  - {{id: respond, name: Respond, type: llm, prompt: "{label}: {{{{message}}}}"}}
"""


def _publish(workspace: Path, db: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "noukai_devserver", "publish", target,
                           "--workspace", str(workspace), "--db", db],
                          capture_output=True, text=True, timeout=60)


def test_publish_makes_production_and_versions_are_routed_by_path(
        tmp_path: Path, workspace_dir: Path,
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(workspace_dir, workspace)
    flow_file = workspace / "flows" / "other" / "app" / "hello.yaml"
    flow_file.write_text(FLOW.format(label="one"))
    server = noukai_devserver_factory(workspace=workspace)
    api = Api(server, "nk_other_key")

    def run(suffix: str) -> object:
        response = api.http.post(f"/seq/other/app/hello{suffix}/execute", json={"message": "m"})
        return response.json().get("result", response.json())

    assert run("") == {"response": "Echo: one: m"}  # no version yet: draft fallback
    assert_error(api.http.post("/seq/other/app/hello/v1/execute", json={"message": "m"}),
                 404, "VERSION_NOT_FOUND")
    published = _publish(workspace, server.db, "other/app/hello")
    assert published.returncode == 0, published.stderr
    assert "version 1" in published.stdout

    flow_file.write_text(FLOW.format(label="two"))  # the draft moves on
    server.restart()
    assert run("") == {"response": "Echo: one: m"}  # production = v1
    assert run("/v1") == {"response": "Echo: one: m"}
    assert run("/v0") == {"response": "Echo: two: m"}  # draft
    assert "version 2" in _publish(workspace, server.db, "other/app/hello").stdout
    # A running server sees the new production version within its reload interval.
    wait_for(lambda: run("") == {"response": "Echo: two: m"})
    assert run("/v1") == {"response": "Echo: one: m"}  # immutable
    assert_error(api.http.post("/seq/other/app/hello/v0/step", json={"message": "m"}), 400,
                 "INVALID_VERSION")
    response = api.http.post("/seq/other/app/hello/v1/step", json={"message": "m"})
    assert response.status_code == 200 and "flow_completed" in response.text
    job = api.http.post("/seq/other/app/hello/v2/jobs", json={"message": "m"}).json()
    assert api.get(f"/seq/other/app/hello/jobs/{job['executionId']}").status_code == 200
    api.close()
    server.stop()


def test_publish_errors(tmp_path: Path) -> None:
    bad = _publish(Path("/nonexistent"), str(tmp_path / "x.sqlite3"), "a/b/c")
    assert bad.returncode == 2 and "invalid workspace" in bad.stderr
    proc = subprocess.run([sys.executable, "-m", "noukai_devserver", "publish", "nope",
                           "--db", str(tmp_path / "x.sqlite3")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "ORG/PROJECT/SLUG" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "noukai_devserver", "publish",
                           "local/demo/missing", "--db", str(tmp_path / "x.sqlite3")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no flow file" in proc.stderr


def test_edited_draft_files_reload_and_running_step_runs_keep_their_definition(
        tmp_path: Path, workspace_dir: Path,
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(workspace_dir, workspace)
    folder = workspace / "flows" / "other" / "app"
    two = "blocks:\n  - {{id: a, type: llm, prompt: '{x} {{{{message}}}}'}}\n" \
          "  - {{id: b, type: llm, prompt: '{x} {{{{a.response}}}}'}}\n"
    (folder / "edit.yaml").write_text(two.format(x="old"))
    server = noukai_devserver_factory(workspace=workspace)
    api = Api(server, "nk_other_key")
    first = api.http.post("/seq/other/app/edit/step", json={"message": "m", "stepIndex": 0})
    run_id = first.text.split('"executionId":"')[1].split('"')[0]

    (folder / "edit.yaml").write_text(two.format(x="new"))
    os.utime(folder / "edit.yaml", ns=(1, 2_000_000_000_000_000_000))
    wait_for(lambda: api.http.post("/seq/other/app/edit/execute", json={"message": "m"})
             .json()["result"] == {"response": "Echo: new Echo: new m"})
    # The step run that began before the edit finishes with its pinned definition.
    rest = api.http.post("/seq/other/app/edit/step", json={
        "executionId": run_id, "stepIndex": 1,
        "accumulatedOutputs": {"a": {"response": "Echo: old m"}}})
    assert '"result":{"response":"Echo: old Echo: old m"}' in rest.text
    # A new flow file is picked up; a broken edit is a clear 400, not a crash.
    (folder / "fresh.yaml").write_text("blocks:\n  - {id: only, type: llm}\n")
    wait_for(lambda: api.http.post("/seq/other/app/fresh/execute",
                                   json={"message": "hi"}).json().get("status") == "completed")
    (folder / "fresh.yaml").write_text("blocks:\n  - {id: only, type: nonsense}\n")
    os.utime(folder / "fresh.yaml", ns=(1, 3_000_000_000_000_000_000))
    broken = wait_for(lambda: (lambda r: r if r.status_code == 400 else None)(
        api.http.post("/seq/other/app/fresh/execute", json={"message": "hi"})))
    body = assert_error(broken, 400, "INVALID_TREE")
    assert "fresh.yaml" in body["detail"]["message"]
    assert "blocks[0].type" in body["detail"]["message"]
    api.close()
    server.stop()
