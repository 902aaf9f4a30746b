"""The command line: start banner, default database, shutdown with open streams."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from devserver_helpers import Api, assert_error, events, parse_sse, wait_for

from noukai_devserver.pytest_plugin import DevServer

BIN = Path(sys.executable).parent


def test_console_script_and_module_both_show_help() -> None:
    for cmd in ([str(BIN / "noukai-dev"), "--help"],
                [sys.executable, "-m", "noukai_devserver", "--help"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "200"})  # no wrapped defaults
        assert proc.returncode == 0, proc.stderr
        for option in ("--host", "--port", "--workspace", "--db", "--heartbeat",
                       "--job-min-latency", "--slow-seconds", "--rate-limit-window",
                       "--session-retention"):
            assert option in proc.stdout
        assert "publish" in proc.stdout
        # Serving on port 8080 (both loopback families) unless told otherwise.
        assert re.search(r"--port\b.*?\[default: 8080\]", proc.stdout, re.S)
        assert re.search(r"--host\b.*?\[default: localhost\]", proc.stdout, re.S)


def test_banner_names_base_url_org_project_and_key(server: DevServer) -> None:
    text = server.log_text
    assert f"serving http://127.0.0.1:{server.port}/api/v1" in text
    assert "org: local  project: demo  api key: nk_local_dev" in text
    assert "org: broke  project: demo  api key: nk_local_broke" in text


def test_default_database_is_in_the_working_directory(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "noukai_devserver", "--port", "0"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        port = re.search(r"localhost:(\d+)/api/v1", first)
        assert port, first
        # Both loopback families answer on the same port.
        for host in ("127.0.0.1", "[::1]"):
            assert httpx.get(f"http://{host}:{port.group(1)}/").status_code == 200
        database = tmp_path / ".noukai-dev" / "demo.sqlite3"
        assert database.is_file()
        with closing(sqlite3.connect(database)) as conn:  # WAL: readers never block the writer
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_open_streams_with_a_final_frame(
        noukai_devserver_factory: Callable[..., DevServer], sig: signal.Signals) -> None:
    server = noukai_devserver_factory(slow_seconds=30)
    api = Api(server)
    captured: dict[str, bytes] = {}
    opened = {name: threading.Event() for name in ("step", "live", "idle")}

    def read(name: str, method: str, path: str, body: dict | None = None) -> None:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        buffer = b""
        with httpx.stream(method, server.base_url + path, json=body, headers=headers,
                          timeout=60) as response:
            for chunk in response.iter_bytes():
                buffer += chunk
                if b"step_started" in buffer:
                    opened[name].set()
        captured[name] = buffer

    job = api.http.post(api.flow("slow-steps", "jobs"), json={"message": "j"}).json()
    step = threading.Thread(target=read, args=("step", "POST", "/seq/local/demo/slow-steps/step",
                                               {"message": "s", "stepIndex": 0}))
    step.start()
    live = threading.Thread(target=read, args=(
        "live", "GET", f"/seq/local/demo/slow-steps/runs/{job['executionId']}/trace/stream"))
    live.start()
    # A step-through run waiting between blocks: nothing will end it, its follower idles.
    waiting = events(api.step("two-step", {"message": "w", "stepIndex": 0})[1])
    idle = threading.Thread(target=read, args=(
        "idle", "GET", f"/seq/local/demo/two-step/runs/{waiting[0]['executionId']}/trace/stream"))
    idle.start()
    execute_sid = str(uuid.uuid4())
    executed: dict[str, httpx.Response] = {}
    execute = threading.Thread(target=lambda: executed.setdefault("r", httpx.post(
        f"{server.base_url}/seq/local/demo/slow-steps/execute", json={"message": "e"},
        headers={"Authorization": f"Bearer {server.api_key}", "X-Session-Id": execute_sid},
        timeout=60)))
    execute.start()
    assert all(event.wait(30) for event in opened.values())
    wait_for(lambda: api.get(f"/seq/sessions/{execute_sid}").status_code == 200)
    assert server.process is not None
    server.process.send_signal(sig)  # SIGINT is what Ctrl-C sends
    server.process.wait(30)  # a deadline, not a speed claim: uvicorn alone would wait forever
    execute.join(30)
    assert_error(executed["r"], 503, "SERVER_SHUTTING_DOWN")
    assert "Traceback" not in server.log_text
    step.join(30)
    live.join(30)
    step_frames = events(parse_sse(captured["step"]))
    assert step_frames[-1]["eventType"] == "step_error"
    assert step_frames[-1]["error"]["code"] == "SERVER_SHUTTING_DOWN"
    # The follower of the job saw the shutdown end it, like any finished run.
    live_frames = parse_sse(captured["live"])
    followed = events(live_frames)
    assert [e["eventType"] for e in followed][-2:] == ["step_error", "flow_completed"]
    assert followed[-1]["summary"]["status"] == "cancelled"
    idle.join(30)
    idle_frames = parse_sse(captured["idle"])  # ends with a comment; the run stays resumable
    assert idle_frames[-1].data is None and "shutting down" in idle_frames[-1].comments[-1]
    assert events(idle_frames)[-1]["eventType"] == "step_completed"
    # The database is consistent after the restart: nothing is left running.
    server.start()
    run_id = step_frames[0]["executionId"]
    assert api.get(f"/seq/local/demo/slow-steps/runs/{run_id}").json()["status"] == "cancelled"
    session = api.get(f"/seq/sessions/{execute_sid}").json()
    assert session["executions"][0]["status"] == "cancelled"
    job_status = api.get(api.flow("slow-steps", f"jobs/{job['executionId']}")).json()
    assert job_status["status"] == "failed" and "shut down" in job_status["error"]
    # Each run the shutdown ended reads like any ended run: its attempt is failed,
    # and its live trace replays a step_error, then the closing flow_completed.
    for ended in (run_id, job["executionId"], session["executions"][0]["executionId"]):
        run_path = f"/seq/local/demo/slow-steps/runs/{ended}"
        steps = api.get(f"{run_path}/trace").json()["steps"]
        assert [(s["stepId"], s["status"]) for s in steps] == [("first", "failed")]
        replay = events(parse_sse(api.get(f"{run_path}/trace/stream").content))
        assert [e["eventType"] for e in replay][-2:] == ["step_error", "flow_completed"]
        assert replay[-1]["result"] is None
        assert replay[-1]["summary"]["status"] == "cancelled"
        if ended == job["executionId"]:
            assert replay == followed  # what the follower saw live is what was stored
    api.close()
    server.stop()
    assert os.path.exists(server.db)
