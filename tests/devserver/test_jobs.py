"""E3/E4 jobs: submit, lifecycle, unique ids, errors (contract §9)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from devserver_helpers import Api, assert_error, wait_for

from noukai_devserver.pytest_plugin import DevServer


def _poll(api: Api, slug: str, job_id: str) -> dict:
    response = api.get(api.flow(slug, f"jobs/{job_id}"))
    assert response.status_code == 200, response.text
    return response.json()


def test_job_goes_through_its_lifecycle(slow_server: DevServer) -> None:
    api = Api(slow_server)
    response = api.http.post(api.flow("hello-world", "jobs"),
                             json={"message": "queued", "parameters": {}, "iterationsUsed": 0,
                                   "accumulatedOutputs": {}, "trace": False})
    assert response.status_code == 200
    accepted = response.json()
    assert set(accepted) >= {"executionId", "status", "flowId", "blockCount"}
    assert accepted["status"] == "pending" and accepted["blockCount"] == 1
    job_id = accepted["executionId"]
    first = _poll(api, "hello-world", job_id)
    assert first["executionId"] == job_id
    assert first["status"] in ("pending", "running")
    seen = set()

    def finished() -> dict | None:
        body = _poll(api, "hello-world", job_id)
        seen.add(body["status"])
        assert body["status"] in ("pending", "running", "completed", "failed")
        return body if body["status"] == "completed" else None

    done = wait_for(finished)
    assert done["result"] == {"response": "Echo: queued"}
    assert done["error"] is None
    assert seen <= {"pending", "running", "completed"}
    api.close()


def test_failed_job_reports_a_string_error(api: Api) -> None:
    job_id = api.http.post(api.flow("always-fails", "jobs"), json={"message": "x"}).json()[
        "executionId"]
    done = wait_for(lambda: (lambda b: b if b["status"] == "failed" else None)(
        _poll(api, "always-fails", job_id)))
    assert isinstance(done["error"], str) and "explode" in done["error"]
    assert done["result"] is None


def test_concurrent_submits_get_unique_ids_and_all_complete(api: Api) -> None:
    def submit(i: int) -> str:
        response = api.http.post(api.flow("hello-world", "jobs"), json={"message": f"m{i}"})
        assert response.status_code == 200
        return str(response.json()["executionId"])

    with ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(submit, range(20)))
    assert len(set(ids)) == 20
    for i, job_id in enumerate(ids):
        done = wait_for(lambda j=job_id: (lambda b: b if b["status"] == "completed" else None)(
            _poll(api, "hello-world", j)))
        assert done["result"] == {"response": f"Echo: m{i}"}


def test_unknown_job_is_404(api: Api) -> None:
    assert_error(api.get(api.flow("hello-world", "jobs/nope")), 404, "JOB_NOT_FOUND")


def test_job_of_another_flow_is_404(api: Api) -> None:
    job_id = api.http.post(api.flow("hello-world", "jobs"), json={"message": "x"}).json()[
        "executionId"]
    assert_error(api.get(api.flow("two-step", f"jobs/{job_id}")), 404, "JOB_NOT_FOUND")


def test_job_preflight_errors_match_execute(api: Api, broke_api: Api) -> None:
    assert_error(api.http.post(api.flow("nope", "jobs"), json={"message": "x"}), 404,
                 "FLOW_NOT_FOUND")
    assert_error(api.http.post(api.flow("hello-world", "jobs"), json={}), 400,
                 "MISSING_MESSAGE")
    response = broke_api.http.post(broke_api.flow("hello-world", "jobs", org="broke"),
                                   json={"message": "x"})
    assert_error(response, 402, "INSUFFICIENT_CREDITS")


def test_the_worker_pool_is_bounded_and_later_jobs_wait_pending(
        noukai_devserver_factory: Callable[..., DevServer]) -> None:
    server = noukai_devserver_factory(job_workers=2, slow_seconds=30)
    api = Api(server)
    ids = [api.http.post(api.flow("slow-steps", "jobs"), json={"message": f"j{i}"}).json()[
        "executionId"] for i in range(4)]
    # The first two (FIFO) execute; the other two wait for a free worker.
    wait_for(lambda: [_poll(api, "slow-steps", j)["status"] for j in ids]
             == ["running", "running", "pending", "pending"])
    trace = api.get(f"/seq/local/demo/slow-steps/runs/{ids[2]}/trace").json()
    assert trace["flowRun"]["status"] == "pending" and trace["steps"] == []
    api.close()
    server.stop()
