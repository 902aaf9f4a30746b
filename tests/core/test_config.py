"""Client configuration and flow identifiers, checked before any request."""

from __future__ import annotations

from typing import Any

import pytest

import noukai_core as nk

KEY = "nk_test_key_123"


def test_missing_key_raises_authentication_error_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOUKAI_API_KEY", raising=False)
    with pytest.raises(nk.AuthenticationError):
        nk.Noukai()
    with pytest.raises(nk.AuthenticationError):
        nk.AsyncNoukai()


def test_key_without_prefix_is_rejected_without_echoing_it() -> None:
    with pytest.raises(nk.AuthenticationError) as info:
        nk.Noukai(api_key="sk_secret_value")
    assert "sk_secret_value" not in str(info.value)


@pytest.mark.parametrize("bad", ["nk_secret_value\n", "nk_secret value", "nk_secrét_value"])
def test_a_key_that_cannot_be_a_header_is_rejected_without_echoing_it(bad: str) -> None:
    for client_class in (nk.Noukai, nk.AsyncNoukai):
        with pytest.raises(nk.AuthenticationError, match="whitespace or non-ASCII") as info:
            client_class(api_key=bad)
        assert "secr" not in str(info.value) and "secr" not in repr(info.value)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOUKAI_API_KEY", KEY)
    with nk.Noukai() as client:
        assert KEY not in repr(client)


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({}, {}, "https://api.noukai.xyz/api/v1"),
        ({"env": "dev"}, {}, "http://localhost:8080/api/v1"),
        ({"env": "development"}, {}, "http://localhost:8080/api/v1"),
        ({}, {"NOUKAI_ENV": "dev"}, "http://localhost:8080/api/v1"),
        ({}, {"NOUKAI_BASE_URL": "http://127.0.0.1:9/api/v1/"}, "http://127.0.0.1:9/api/v1"),
        (
            {"env": "production"},
            {"NOUKAI_BASE_URL": "http://x:1/api/v1"},
            "https://api.noukai.xyz/api/v1",
        ),
        ({}, {"NOUKAI_BASE_URL": "http://x:1/a", "NOUKAI_ENV": "dev"}, "http://x:1/a"),
        ({"base_url": "http://gw:2/api/v1", "env": "dev"}, {}, "http://gw:2/api/v1"),
    ],
)
def test_base_url_precedence(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, str], env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert nk.Noukai(api_key=KEY, **kwargs).base_url == expected


def test_unknown_env_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="staging"):
        nk.Noukai(api_key=KEY, env="staging")


def test_org_and_project_go_together() -> None:
    with pytest.raises(ValueError):
        nk.Noukai(api_key=KEY, org="acme")
    with pytest.raises(ValueError):
        nk.AsyncNoukai(api_key=KEY, project="p")
    client = nk.Noukai(api_key=KEY, org="acme", project="spelling")
    assert (client.default_org, client.default_project) == ("acme", "spelling")


def test_flow_identifier_forms() -> None:
    client = nk.Noukai(api_key=KEY, org="acme", project="spelling")
    for flow in (
        client.flow("grade-3"),
        client.flow("acme/spelling/grade-3"),
        client.flow({"org": "acme", "project": "spelling", "slug": "grade-3"}),
        client.flow(org="acme", project="spelling", slug="grade-3"),
        client.flow(slug="grade-3"),
    ):
        assert (flow.org, flow.project, flow.slug) == ("acme", "spelling", "grade-3")
    other = client.flow("other/x/grade-3")
    assert (other.org, other.project) == ("other", "x")


@pytest.mark.parametrize("bad", ["a/b", "a/b/c/d", "..", ".", "has space", "", "x/../y"])
def test_bad_identifiers_are_value_errors(bad: str) -> None:
    client = nk.Noukai(api_key=KEY, org="acme", project="p")
    with pytest.raises(ValueError):
        client.flow(bad)


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "a b", "", "é"])
def test_every_path_segment_is_validated_before_a_url_is_built(bad: str) -> None:
    with pytest.raises(ValueError):
        nk.Noukai(api_key=KEY, org=bad, project="p")
    with pytest.raises(ValueError):
        nk.AsyncNoukai(api_key=KEY, org="o", project=bad)
    client = nk.Noukai(api_key=KEY, org="acme", project="p")
    for identifier in (
        {"org": bad, "project": "p", "slug": "s"},
        {"org": "o", "project": bad, "slug": "s"},
        {"slug": bad},
    ):
        with pytest.raises(ValueError):
            client.flow(identifier)
    with pytest.raises(ValueError):
        client.flow(org="o", project="p", slug=bad)
    flow = client.flow("s")
    with pytest.raises(ValueError):
        flow.run(bad)
    with pytest.raises(ValueError):
        flow.run("E").step_trace(bad)


def test_an_identifier_naming_its_org_cannot_take_org_keywords_too() -> None:
    client = nk.Noukai(api_key=KEY, org="acme", project="spelling")
    with pytest.raises(ValueError, match="already names"):
        client.flow("other/x/grade-3", org="acme")
    with pytest.raises(ValueError, match="already names"):
        client.flow({"org": "other", "project": "x", "slug": "s"}, project="spelling")
    explicit = client.flow("grade-3", org="other", project="x")  # a bare slug may take them
    assert (explicit.org, explicit.project, explicit.slug) == ("other", "x", "grade-3")


def test_short_slug_without_defaults_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="defaults"):
        nk.Noukai(api_key=KEY).flow("grade-3")


def test_async_flow_is_a_plain_method() -> None:
    flow = nk.AsyncNoukai(api_key=KEY).flow("a/b/c")
    assert isinstance(flow, nk.AsyncFlow)


@pytest.mark.parametrize("version", ["main", -1, 1.5, True, None])
def test_invalid_versions_are_value_errors(version: object) -> None:
    flow = nk.Noukai(api_key=KEY).flow("a/b/c")
    with pytest.raises(ValueError):
        flow.execute(message="x", version=version)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["draft", 0])
def test_streams_refuse_the_draft(version: object) -> None:
    flow = nk.Noukai(api_key=KEY).flow("a/b/c")
    with pytest.raises(ValueError, match="draft"):
        flow.events(message="x", version=version)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="draft"):
        nk.AsyncNoukai(api_key=KEY).flow("a/b/c").steps(message="x", version=version)  # type: ignore[arg-type]


def test_message_and_messages_together_fail_before_any_request() -> None:
    # The base URL points at a closed port: a request would be a connection error.
    flow = nk.Noukai(api_key=KEY, base_url="http://127.0.0.1:9/api/v1").flow("a/b/c")
    with pytest.raises(ValueError, match="message"):
        flow.execute(message="hi", messages=[{"role": "user", "content": "hi"}])


def test_limits_on_attachments_and_tools() -> None:
    flow = nk.Noukai(api_key=KEY, base_url="http://127.0.0.1:9/api/v1").flow("a/b/c")
    with pytest.raises(ValueError, match="attachments"):
        flow.execute(message="x", attachments=[{"url": "https://x/a.png"}] * 11)
    tool = {"type": "function", "function": {"name": "t"}}
    with pytest.raises(ValueError, match="tools"):
        flow.execute(message="x", tools=[tool] * 65)


def test_sync_flow_refuses_a_coroutine_tool_handler() -> None:
    async def handler(calls: list[dict[str, object]]) -> list[dict[str, object]]:
        return []

    flow = nk.Noukai(api_key=KEY, base_url="http://127.0.0.1:9/api/v1").flow("a/b/c")
    with pytest.raises(TypeError, match="AsyncNoukai"):
        flow.execute(message="x", tool_handler=handler)  # type: ignore[arg-type]


def test_close_twice_is_safe() -> None:
    client = nk.Noukai(api_key=KEY)
    client.close()
    client.close()


async def test_aclose_twice_is_safe() -> None:
    client = nk.AsyncNoukai(api_key=KEY)
    await client.aclose()
    await client.aclose()


def test_a_closed_client_raises_a_typed_error(noukai_devserver: Any) -> None:
    client = nk.Noukai(api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url)
    flow = client.flow(f"{noukai_devserver.org}/{noukai_devserver.project}/hello-world")
    assert flow.execute(message="hi").status == "completed"
    client.close()
    with pytest.raises(nk.APIConnectionError) as caught:
        flow.execute(message="hi")
    assert caught.value.code == "CLIENT_CLOSED"
    with pytest.raises(nk.APIConnectionError, match="client is closed"):
        list(flow.events(message="hi"))


async def test_a_closed_async_client_raises_a_typed_error(noukai_devserver: Any) -> None:
    client = nk.AsyncNoukai(api_key=noukai_devserver.api_key, base_url=noukai_devserver.base_url)
    flow = client.flow(f"{noukai_devserver.org}/{noukai_devserver.project}/hello-world")
    assert (await flow.execute(message="hi")).status == "completed"
    await client.aclose()
    with pytest.raises(nk.APIConnectionError) as caught:
        await flow.execute(message="hi")
    assert caught.value.code == "CLIENT_CLOSED"
    with pytest.raises(nk.APIConnectionError, match="client is closed"):
        async for _ in flow.events(message="hi"):
            pass


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_a_per_call_timeout_must_be_positive_seconds(bad: object) -> None:
    # A closed port: a request would be a connection error, not a ValueError.
    client = nk.Noukai(api_key=KEY, base_url="http://127.0.0.1:9/api/v1", max_retries=0)
    flow = client.flow("a/b/c")
    calls = [
        lambda: flow.execute(message="x", timeout=bad),
        lambda: list(flow.events(message="x", timeout=bad)),
        lambda: flow.execute_async(message="x", timeout=bad),
        lambda: flow.run("E").trace(timeout=bad),
        lambda: flow.run("E").step_trace("s", timeout=bad),
        lambda: list(flow.run("E").live_trace(timeout=bad)),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="timeout"):
            call()


@pytest.mark.parametrize("bad", [0, -5, "10", 2.5])
def test_max_connections_must_be_a_positive_int_or_none(bad: object) -> None:
    with pytest.raises(ValueError, match="max_connections"):
        nk.Noukai(api_key=KEY, max_connections=bad)  # type: ignore[arg-type]
    assert nk.AsyncNoukai(api_key=KEY, max_connections=None).base_url


@pytest.mark.parametrize("bad", [0, -1, "10"])
async def test_a_bad_stream_timeout_fails_at_call_time_not_on_iteration(bad: object) -> None:
    """No iteration here: the error must come from the call itself (both clients)."""
    url = "http://127.0.0.1:9/api/v1"
    with nk.Noukai(api_key=KEY, base_url=url) as client:
        flow = client.flow("a/b/c")
        for method in (flow.events, flow.steps):
            with pytest.raises(ValueError, match="timeout"):
                method(message="x", timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            flow.run("E").live_trace(timeout=bad)  # type: ignore[arg-type]
    async with nk.AsyncNoukai(api_key=KEY, base_url=url) as aclient:
        aflow = aclient.flow("a/b/c")
        for amethod in (aflow.events, aflow.steps):
            with pytest.raises(ValueError, match="timeout"):
                amethod(message="x", timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            aflow.run("E").live_trace(timeout=bad)  # type: ignore[arg-type]
