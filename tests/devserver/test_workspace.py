"""A bad workspace stops the start with an error naming file, field or line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

GOOD_CONFIG = """
orgs:
  acme:
    projects:
      app: {}
keys:
  nk_acme: {org: acme}
"""
GOOD_FLOW = "blocks:\n  - {id: a, type: llm}\n"


def _start(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "noukai_devserver", "--workspace",
                           str(workspace), "--port", "0", "--db", ":memory:"],
                          capture_output=True, text=True, timeout=60)


CASES = [
    ("noukai.yaml", "orgs: [1, 2", None, "line 1", "invalid YAML"),
    ("noukai.yaml", "keys: {}", None, "orgs", "required"),
    ("noukai.yaml", GOOD_CONFIG.replace("nk_acme", "sk_acme"), None, "keys[0]", "nk_"),
    ("noukai.yaml", GOOD_CONFIG.replace("{org: acme}", "{org: nobody}"), None,
     "keys[0].org", "must name an org"),
    ("noukai.yaml", GOOD_CONFIG.replace("app: {}", "app: {capture: loud}"), None,
     "orgs.acme.projects.app.capture", "must be one of"),
    ("flows/acme/app/f.yaml", "blocks:\n  - {id: a, type: magic}\n", GOOD_CONFIG,
     "blocks[0].type", "must be one of"),
    ("flows/acme/app/f.yaml", "blocks: []\n", GOOD_CONFIG, "blocks", "non-empty"),
    ("flows/acme/app/f.yaml", "blocks:\n  - {id: a, type: llm}\n  - {id: a, type: llm}\n",
     GOOD_CONFIG, "blocks", "duplicate"),
    ("flows/acme/app/f.yaml", "blocks:\n  - {id: a, type: llm, retry: {maxAttempts: 0}}\n",
     GOOD_CONFIG, "blocks[0].retry.maxAttempts", "integer"),
    ("flows/acme/app/f.yaml", "blocks:\n  - id: a\n    type: llm\n   bad: indent\n",
     GOOD_CONFIG, "line 4", "invalid YAML"),
    ("flows/acme/app/f.yaml",
     "blocks:\n  - {id: l, type: loop, over: x, blocks: [{id: i, type: llm, tools: true}]}\n",
     GOOD_CONFIG, "blocks[0].blocks[0].tools", "not allowed inside a loop"),
]


@pytest.mark.parametrize(("path", "content", "config", "where", "problem"), CASES)
def test_bad_file_names_file_field_and_problem(tmp_path: Path, path: str, content: str,
                                               config: str | None, where: str,
                                               problem: str) -> None:
    if config is not None:
        (tmp_path / "noukai.yaml").write_text(config)
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    proc = _start(tmp_path)
    assert proc.returncode == 2
    message = proc.stderr.strip()
    assert str(target) in message
    assert where in message and problem in message
    assert "Traceback" not in proc.stderr


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    assert proc.returncode == 2
    assert "noukai.yaml" in proc.stderr and "missing" in proc.stderr


def test_a_valid_custom_workspace_serves_its_flows(tmp_path: Path) -> None:
    (tmp_path / "noukai.yaml").write_text(GOOD_CONFIG)
    (tmp_path / "flows" / "acme" / "app").mkdir(parents=True)
    (tmp_path / "flows" / "acme" / "app" / "f.yaml").write_text(GOOD_FLOW)
    proc = subprocess.Popen([sys.executable, "-m", "noukai_devserver", "--workspace",
                             str(tmp_path), "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert "serving http://127.0.0.1:" in lines[0]
        assert any("api key: (see noukai.yaml)" in line for line in lines)
        assert not any("nk_acme" in line for line in lines)
        assert (tmp_path / "noukai.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(30)


def test_yaml_values_json_lacks_become_strings(tmp_path: Path,
                                               noukai_devserver_factory) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "noukai.yaml").write_text(GOOD_CONFIG)
    (tmp_path / "flows" / "acme" / "app").mkdir(parents=True)
    (tmp_path / "flows" / "acme" / "app" / "dated.yaml").write_text(
        "blocks:\n  - {id: t, type: template, template: {day: 2024-01-31, n: 3}}\n")
    server = noukai_devserver_factory(workspace=tmp_path)
    response = httpx.post(f"{server.base_url}/seq/acme/app/dated/execute", json={},
                          headers={"Authorization": "Bearer nk_acme"})
    assert response.json()["result"] == {"day": "2024-01-31", "n": 3}
    server.stop()
