"""Fixtures for the dev server tests; helpers live in `devserver_helpers`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from devserver_helpers import Api

from noukai_devserver.pytest_plugin import DevServer


@pytest.fixture(scope="session")
def server(noukai_devserver: DevServer) -> DevServer:
    return noukai_devserver


@pytest.fixture
def api(server: DevServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.close()


@pytest.fixture
def broke_api(server: DevServer) -> Iterator[Api]:
    client = Api(server, server.broke_api_key)
    yield client
    client.close()


WORKSPACE_CONFIG = """
orgs:
  acme:
    credits: "0.000050"
    capture: full
    projects:
      app: {}
  thin:
    credits: "0.000001"
    projects:
      app: {}
  other:
    credits: unlimited
    projects:
      app: {}
      secret: {capture: metadata_only}
  quiet:
    capture: metadata_only
    projects:
      app: {}
      loud: {capture: full}
keys:
  nk_acme_key: {org: acme}
  nk_acme_limited: {org: acme, rateLimit: 3}
  nk_other_key: {org: other}
  nk_thin_key: {org: thin}
  nk_quiet_key: {org: quiet}
"""

HELLO_FLOW = """
message: required
blocks:
  - {id: respond, name: Respond, type: llm, prompt: "{{message}}"}
"""

TWO_BLOCK_FLOW = """
blocks:
  - {id: one, type: llm, prompt: "{{message}}"}
  - {id: two, type: llm, prompt: "{{one.response}}"}
"""

PARAMS_FLOW = """
parameters:
  required: [city, days]
blocks:
  - id: plan
    type: template
    template: {city: "{{parameters.city}}", days: "{{parameters.days}}", note: "{{message}}"}
"""


@pytest.fixture(scope="session")
def workspace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom workspace: a small balance, a rate-limited key, a second org."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "noukai.yaml").write_text(WORKSPACE_CONFIG)
    for org, project in (("acme", "app"), ("other", "secret"), ("other", "app"),
                         ("quiet", "app"), ("quiet", "loud")):
        folder = root / "flows" / org / project
        folder.mkdir(parents=True)
        (folder / "hello.yaml").write_text(HELLO_FLOW)
    (root / "flows" / "thin" / "app").mkdir(parents=True)
    (root / "flows" / "thin" / "app" / "two.yaml").write_text(TWO_BLOCK_FLOW)
    (root / "flows" / "other" / "app" / "params.yaml").write_text(PARAMS_FLOW)
    for mode in ("redacted", "off", "metadata_only"):
        (root / "flows" / "other" / "app" / f"{mode}.yaml").write_text(
            f"capture: {mode}\n{HELLO_FLOW}")
    return root


@pytest.fixture(scope="session")
def custom_server(noukai_devserver_factory: Callable[..., DevServer],
                  workspace_dir: Path) -> DevServer:
    """A server on the custom workspace, with a long rate-limit window."""
    return noukai_devserver_factory(workspace=workspace_dir, rate_limit_window=60,
                                    snapshot_limit=4000)


@pytest.fixture(scope="session")
def slow_server(noukai_devserver_factory: Callable[..., DevServer]) -> DevServer:
    """1 s slow blocks and job latency: room for a test to act mid-run under load."""
    return noukai_devserver_factory(slow_seconds=1.0, job_min_latency=1.0)
