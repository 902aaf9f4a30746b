"""E1 `/execute` over real HTTP against the demo workspace."""

from __future__ import annotations

from decimal import Decimal

from devserver_helpers import Api, assert_error


def test_hello_world_completes_with_last_block_output(api: Api) -> None:
    response = api.execute("hello-world", {"message": "Hello", "parameters": {},
                                           "iterationsUsed": 0, "accumulatedOutputs": {},
                                           "trace": False})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["result"] == {"response": "Echo: Hello"}
    assert body["blockCount"] == 1
    assert body["executionId"] and body["flowId"]
    assert response.headers["x-request-id"].startswith("req_")


def test_each_call_gets_a_fresh_execution_id_and_the_same_output(api: Api) -> None:
    first = api.execute("hello-world", {"message": "same"}).json()
    second = api.execute("hello-world", {"message": "same"}).json()
    assert first["executionId"] != second["executionId"]
    assert first["result"] == second["result"]
    assert first["flowId"] == second["flowId"]
    # Tokens and cost are deterministic too.
    usage = [[(s["tokens"], s["costUsd"]) for s in api.get(
        f"/seq/local/demo/hello-world/runs/{body['executionId']}/trace").json()["steps"]]
        for body in (first, second)]
    assert usage[0] == usage[1] and usage[0][0][0]["total"] > 0


def test_two_step_chains_the_first_output_into_the_second(api: Api) -> None:
    body = api.execute("two-step", {"message": "plan a trip"}).json()
    assert body["status"] == "completed"
    assert body["blockCount"] == 2
    assert body["result"] == {"response": "Echo: Summarise: Echo: plan a trip"}


def test_null_fields_equal_absent_and_unknown_fields_are_ignored(api: Api) -> None:
    response = api.execute("hello-world", {"message": "x", "messages": None, "tools": None,
                                           "blockOverrides": None, "somethingNew": [1, 2]})
    assert response.status_code == 200
    assert response.json()["result"] == {"response": "Echo: x"}


def test_always_fails_returns_200_failed_with_error(api: Api) -> None:
    body = api.execute("always-fails", {"message": "boom"}).json()
    assert body["status"] == "failed"
    assert body["result"] is None
    assert body["error"]["stepId"] == "explode"
    assert body["error"]["code"] == "MODEL_ERROR"


def test_flaky_block_succeeds_on_its_second_attempt(api: Api) -> None:
    body = api.execute("flaky-retry", {"message": "retry me"}).json()
    assert body["status"] == "completed"
    assert body["result"] == {"response": "Echo: retry me"}


def test_block_overrides_apply_per_block(api: Api) -> None:
    body = api.execute("two-step", {
        "message": "hi",
        "blockOverrides": {"summarise": {"prompt": "Overridden {{message}}",
                                         "model": "anthropic/claude-haiku-4-5",
                                         "temperature": 0.5}},
    }).json()
    assert body["result"] == {"response": "Echo: Overridden hi"}


def test_missing_required_message_is_400(api: Api) -> None:
    assert_error(api.execute("hello-world", {"parameters": {}}), 400, "MISSING_MESSAGE")


def test_message_and_messages_together_is_400(api: Api) -> None:
    response = api.execute("agent-tools", {"message": "a",
                                           "messages": [{"role": "user", "content": "b"}]})
    assert_error(response, 400, "MESSAGE_AND_MESSAGES")


def test_unknown_slug_is_404_flow_not_found(api: Api) -> None:
    assert_error(api.execute("nope", {"message": "x"}), 404, "FLOW_NOT_FOUND")


def test_other_org_is_404_not_403(api: Api) -> None:
    response = api.http.post(api.flow("hello-world", "execute", org="broke"),
                             json={"message": "x"})
    assert_error(response, 404, "FLOW_NOT_FOUND")


def test_zero_balance_org_gets_402_before_running(broke_api: Api) -> None:
    response = broke_api.http.post(broke_api.flow("hello-world", "execute", org="broke"),
                                   json={"message": "x"})
    assert_error(response, 402, "INSUFFICIENT_CREDITS")


def test_step_completed_cost_is_a_fixed_point_string(api: Api) -> None:
    _response, frames = api.step("hello-world", {"message": "cost", "stepIndex": 0})
    done = next(f.data for f in frames if f.event == "step_completed")
    assert isinstance(done["costUsd"], str)
    assert "e" not in done["costUsd"].lower()
    assert Decimal(done["costUsd"]) > 0
    assert done["tokens"]["total"] == done["tokens"]["prompt"] + done["tokens"]["completion"]
    assert done["tokens"]["total"] > 0
