"""Server-side Idempotency-Key: a repeated key runs the flow once (issue 5 item 9)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import httpx
from devserver_helpers import Api, assert_error, wait_for

from noukai_devserver.pytest_plugin import DevServer


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"idem-{uuid.uuid4()}"}


def test_a_repeated_key_runs_the_flow_once(api: Api) -> None:
    sid = str(uuid.uuid4())
    headers = {**_key(), "X-Session-Id": sid}
    first = api.execute("hello-world", {"message": "once"}, headers=headers)
    second = api.execute("hello-world", {"message": "once"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    executions = api.get(f"/seq/sessions/{sid}").json()["executions"]
    assert [e["executionId"] for e in executions] == [first.json()["executionId"]]


def test_a_repeat_while_the_first_runs_is_409(slow_server: DevServer) -> None:
    api = Api(slow_server)
    sid = str(uuid.uuid4())
    headers = {**_key(), "X-Session-Id": sid}
    results: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: results.setdefault(
        "first", api.execute("slow-steps", {"message": "slow"}, headers=headers)))
    thread.start()
    wait_for(lambda: api.get(f"/seq/sessions/{sid}").status_code == 200)
    assert_error(api.execute("slow-steps", {"message": "slow"}, headers=headers), 409,
                 "IDEMPOTENCY_IN_PROGRESS")
    thread.join(30)
    again = api.execute("slow-steps", {"message": "slow"}, headers=headers)
    assert again.json() == results["first"].json()
    assert len(api.get(f"/seq/sessions/{sid}").json()["executions"]) == 1
    api.close()


def test_the_same_key_with_another_body_is_rejected(api: Api) -> None:
    headers = _key()
    api.execute("hello-world", {"message": "a"}, headers=headers)
    assert_error(api.execute("hello-world", {"message": "b"}, headers=headers), 422,
                 "IDEMPOTENCY_KEY_MISMATCH")


def test_a_stored_client_error_is_replayed(api: Api) -> None:
    headers = _key()
    assert_error(api.execute("hello-world", {}, headers=headers), 400, "MISSING_MESSAGE")
    again = api.execute("hello-world", {}, headers=headers)
    assert_error(again, 400, "MISSING_MESSAGE")
    assert again.headers["idempotent-replayed"] == "true"


def test_jobs_with_a_repeated_key_are_one_job(api: Api) -> None:
    headers = _key()
    first = api.http.post(api.flow("hello-world", "jobs"), json={"message": "j"},
                          headers=headers).json()
    second = api.http.post(api.flow("hello-world", "jobs"), json={"message": "j"},
                           headers=headers).json()
    assert first["executionId"] == second["executionId"]


def test_streams_are_never_silently_rerun(api: Api) -> None:
    headers = _key()
    response, frames = api.step("hello-world", {"message": "s", "stepIndex": 0},
                                headers=headers)
    assert response.status_code == 200 and frames
    repeat, _ = api.step("hello-world", {"message": "s", "stepIndex": 0}, headers=headers)
    assert_error(repeat, 409, "IDEMPOTENCY_KEY_REUSED")


def test_keys_are_scoped_by_path(api: Api) -> None:
    headers = _key()
    one = api.execute("hello-world", {"message": "p"}, headers=headers).json()
    other = api.execute("two-step", {"message": "p"}, headers=headers).json()
    assert one["executionId"] != other["executionId"]


def test_an_invalid_key_is_400(api: Api) -> None:
    response = api.execute("hello-world", {"message": "x"},
                           headers={"Idempotency-Key": "k" * 300})
    assert_error(response, 400, "IDEMPOTENCY_KEY_INVALID")


def test_a_5xx_outcome_is_not_stored_under_its_key(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    """The dev server's 5xx for a POST that starts work: an /execute still running when
    the server stops answers 503 `SERVER_SHUTTING_DOWN`. That outcome must not be kept
    under its key (a retry after a server failure has to be able to run), so after a
    restart on the same database the same key runs the flow instead of replaying 503."""
    server = noukai_devserver_factory(slow_seconds=5.0)  # still running when we stop it
    api = Api(server)
    sid = str(uuid.uuid4())
    headers = {**_key(), "X-Session-Id": sid}
    body = {"message": "retry me"}
    first: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: first.setdefault(
        "r", api.execute("slow-steps", body, headers=headers)))
    thread.start()
    wait_for(lambda: api.get(f"/seq/sessions/{sid}").status_code == 200)
    server.stop()
    thread.join(30)
    assert_error(first["r"], 503, "SERVER_SHUTTING_DOWN")
    server.options["slow_seconds"] = 0.01  # the repeat need not be slow
    server.start()
    again = api.execute("slow-steps", body, headers=headers)
    assert again.status_code == 200, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["status"] == "completed"
    executions = api.get(f"/seq/sessions/{sid}").json()["executions"]
    assert [e["status"] for e in executions] == ["cancelled", "completed"]
    assert executions[1]["executionId"] == again.json()["executionId"]
    # That success is stored: one more repeat replays it without running anything.
    replayed = api.execute("slow-steps", body, headers=headers)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == again.json()
    assert len(api.get(f"/seq/sessions/{sid}").json()["executions"]) == 2
    api.close()
