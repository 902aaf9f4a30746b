"""The pytest plugin: import-light, fixtures work, failure message names the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx

from noukai_devserver.pytest_plugin import DevServer


def test_session_fixture_exposes_demo_credentials(noukai_devserver: DevServer) -> None:
    assert noukai_devserver.base_url == f"http://127.0.0.1:{noukai_devserver.port}/api/v1"
    assert noukai_devserver.port != 8080
    assert noukai_devserver.keys == {"nk_local_dev": "local", "nk_local_broke": "broke"}
    assert (noukai_devserver.org, noukai_devserver.project) == ("local", "demo")
    response = httpx.post(
        f"{noukai_devserver.base_url}/seq/local/demo/hello-world/execute",
        json={"message": "plugin"},
        headers={"Authorization": f"Bearer {noukai_devserver.api_key}"})
    assert response.json()["status"] == "completed"


def test_missing_extra_fails_the_fixture_naming_it(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        def test_uses_server(noukai_devserver):
            pass
    """))
    # A sitecustomize that makes `uvicorn` look uninstalled, as for a user without the extra.
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "uvicorn":
                    raise ModuleNotFoundError("No module named 'uvicorn'")
                return None
        sys.meta_path.insert(0, Block())
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert "noukai[devserver]" in proc.stdout


def test_registered_fixtures_are_prefixed_and_not_autouse(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        def test_no_noukai_fixture_is_active_unless_requested(request):
            assert not [n for n in request.fixturenames if n.startswith("noukai")]
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout
    listing = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-q", "-p",
                              "no:cacheprovider", str(tmp_path)],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    section = listing.stdout.split("fixtures defined from noukai_devserver.pytest_plugin")[1]
    section = section.split("fixtures defined from")[0]
    names = [line.split()[0] for line in section.splitlines()
             if line and not line.startswith((" ", "-"))]
    assert sorted(names) == ["noukai_devserver", "noukai_devserver_factory"]


def test_importing_the_plugin_loads_only_the_standard_library_and_pytest() -> None:
    """pytest imports the plugin in every run of every project that installs noukai."""
    script = textwrap.dedent("""
        import sys
        import pytest
        before = set(sys.modules)
        import noukai_devserver.pytest_plugin
        added = {m.split(".")[0] for m in set(sys.modules) - before}
        print(sorted(m for m in added if m not in sys.stdlib_module_names))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['noukai_devserver']"


def test_a_workspace_server_gives_that_workspaces_keys(
        noukai_devserver_factory: Callable[..., DevServer], workspace_dir: Path) -> None:
    server = noukai_devserver_factory(workspace=workspace_dir)
    assert server.keys == {"nk_acme_key": "acme", "nk_acme_limited": "acme",
                           "nk_other_key": "other", "nk_thin_key": "thin",
                           "nk_quiet_key": "quiet"}
    assert (server.api_key, server.org, server.project) == ("nk_acme_key", "acme", "app")
    response = httpx.post(f"{server.base_url}/seq/{server.org}/{server.project}/hello/execute",
                          json={"message": "mine"},
                          headers={"Authorization": f"Bearer {server.api_key}"})
    assert response.json()["result"] == {"response": "Echo: mine"}
    server.stop()
