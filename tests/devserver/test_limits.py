"""Rate limits (429 + Retry-After) and credit balances (402) on a custom workspace."""

from __future__ import annotations

from decimal import Decimal

import httpx
from devserver_helpers import assert_error

from noukai_devserver.pytest_plugin import DevServer


def _post(server: DevServer, key: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body,
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_rate_limited_key_gets_429_with_integer_retry_after(custom_server: DevServer) -> None:
    statuses = []
    for _ in range(5):
        response = _post(custom_server, "nk_acme_limited", "/seq/other/app/hello/execute",
                         {"message": "x"})
        statuses.append(response.status_code)
    # 3 allowed per window (they 404: another org), then 429.
    assert statuses[:3] == [404, 404, 404]
    assert statuses[3:] == [429, 429]
    assert_error(response, 429, "RATE_LIMIT")
    retry = response.headers["retry-after"]
    assert retry.isdigit() and 1 <= int(retry) <= 60


def test_other_keys_are_not_limited_by_that_key(custom_server: DevServer) -> None:
    for _ in range(5):
        response = _post(custom_server, "nk_other_key", "/seq/other/app/hello/execute",
                         {"message": "x"})
        assert response.status_code == 200


def test_balance_is_charged_per_run_until_402(custom_server: DevServer) -> None:
    costs = []
    for _ in range(100):
        response = _post(custom_server, "nk_acme_key", "/seq/acme/app/hello/step",
                         {"message": "spend some credits please", "stepIndex": 0})
        if response.status_code == 402:
            assert_error(response, 402, "INSUFFICIENT_CREDITS")
            break
        assert response.status_code == 200
        for line in response.text.splitlines():
            if line.startswith("data: ") and '"step_completed"' in line:
                costs.append(Decimal(httpx.Response(200, content=line[6:]).json()["costUsd"]))
    else:
        raise AssertionError("the balance never ran out")
    assert sum(costs) >= Decimal("0.000050")
    assert len(costs) >= 2


def test_balance_running_out_mid_run_fails_the_next_block_in_band(
        custom_server: DevServer) -> None:
    response = _post(custom_server, "nk_thin_key", "/seq/thin/app/two/step",
                     {"message": "expensive enough", "stepIndex": 0, "runRemaining": True})
    frames = [httpx.Response(200, content=line[6:]).json()
              for line in response.text.splitlines() if line.startswith("data: ")]
    assert [f["eventType"] for f in frames][-2:] == ["step_completed", "step_error"]
    assert frames[-1]["stepId"] == "two"
    assert frames[-1]["error"]["code"] == "CREDITS_EXHAUSTED"
    again = _post(custom_server, "nk_thin_key", "/seq/thin/app/two/execute", {"message": "x"})
    assert_error(again, 402, "INSUFFICIENT_CREDITS")


def test_required_parameters_are_checked(custom_server: DevServer) -> None:
    missing = _post(custom_server, "nk_other_key", "/seq/other/app/params/execute",
                    {"message": "m", "parameters": {"city": "Oslo"}})
    body = assert_error(missing, 400, "MISSING_PARAMETER")
    assert body["detail"]["parameters"] == ["days"]
    ok = _post(custom_server, "nk_other_key", "/seq/other/app/params/execute",
               {"message": "m", "parameters": {"city": "Oslo", "days": 3}})
    assert ok.json()["result"] == {"city": "Oslo", "days": 3, "note": "m"}
