"""pytest plugin of noukai_devserver, registered through the `pytest11` entry point.

It loads in every pytest run of every project that installs `noukai`, so at
import it touches only the standard library and pytest, registers nothing
autouse, and prefixes its fixtures `noukai_`.

Fixtures (session-scoped; each server is a subprocess on a free loopback port,
never 8080, with fast time constants):

- `noukai_devserver`: the demo workspace; `.base_url`, `.url`, `.port`,
  `.api_key`, `.broke_api_key`, `.org`, `.project`, and `.keys` (every API key
  the server accepts, mapped to its org).
- `noukai_devserver_factory`: `(workspace=None, db=None, **options)` starts
  another server; options are CLI options (`slow_seconds=0.3` ->
  `--slow-seconds 0.3`). With a workspace, `.keys` are that workspace's keys,
  and `.api_key` / `.org` / `.project` those of its first key. Every server
  has `.stop()` (SIGTERM), `.kill()` (SIGKILL), `.start()` and `.restart()`
  (same database); all are stopped at session end.

If the `devserver` extra is missing, the fixtures fail with a message naming
`noukai[devserver]`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["DevServer"]

FAST_OPTIONS: dict[str, Any] = {
    "heartbeat": 0.1,
    "job_min_latency": 0.4,
    "slow_seconds": 0.3,
    "stream_delay": 0.01,
    "rate_limit_window": 1.0,
    "reload_interval": 0.05,
}
_READY = re.compile(r"serving http://[^\s]+:(\d+)/api/v1")
_EXTRA_MODULES = ("fastapi", "uvicorn", "yaml", "typer")
START_TIMEOUT = 30.0


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require_extra() -> None:
    missing = [m for m in _EXTRA_MODULES if not _installed(m)]
    if missing:
        pytest.fail(
            "the noukai dev server fixtures need the devserver extra "
            f"(missing {', '.join(missing)}): pip install 'noukai[devserver]'",
            pytrace=False,
        )


class DevServer:
    """A dev server subprocess; its credentials are attributes (the demo's by default)."""

    api_key = "nk_local_dev"
    broke_api_key = "nk_local_broke"  # demo workspace only
    org = "local"
    project = "demo"

    def __init__(self, workspace: Path | None, db: str, options: dict[str, Any],
                 log_dir: Path) -> None:
        self.workspace = workspace
        self.db = db
        self.options = options
        self.port = 0
        self._log_dir = log_dir
        self._log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.keys: dict[str, str] = {self.api_key: "local", self.broke_api_key: "broke"}
        if workspace is not None:
            self.keys = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def log_text(self) -> str:
        """Everything the server printed (banner, access log) so far."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    def command(self) -> list[str]:
        # Reuse the port on restart, so clients keep their base URL.
        cmd = [sys.executable, "-m", "noukai_devserver", "--host", "127.0.0.1",
               "--port", str(self.port), "--db", self.db]
        if self.workspace is not None:
            cmd += ["--workspace", str(self.workspace)]
        for name, value in self.options.items():
            cmd += [f"--{name.replace('_', '-')}", str(value)]
        return cmd

    def start(self) -> DevServer:
        if self.process is not None and self.process.poll() is None:
            return self
        fd, name = tempfile.mkstemp(prefix="noukai-dev-", suffix=".log", dir=self._log_dir)
        self._log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = _READY.search(self.log_text)
            if match:
                self.port = int(match.group(1))
                if self.workspace is not None and not self.keys:
                    self._adopt_workspace_keys(self.workspace)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"noukai dev server did not start:\n{self.log_text}")

    def _adopt_workspace_keys(self, workspace: Path) -> None:
        """Read the keys of a workspace the server has just loaded successfully
        (so the `devserver` extra is installed and the file is valid)."""
        from ._workspace import load_workspace

        loaded = load_workspace(workspace)
        self.keys = {key: info.org for key, info in loaded.keys.items()}
        self.api_key = next(iter(loaded.keys))
        org = loaded.orgs[loaded.keys[self.api_key].org]
        self.org = org.name
        self.project = next(iter(org.projects), "")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no cleanup at all (for crash-recovery tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> DevServer:
        """Stop (SIGTERM) and start again on the same database and port."""
        self.stop()
        return self.start()

    def __repr__(self) -> str:
        return f"<DevServer {self.base_url}>"


@pytest.fixture(scope="session")
def noukai_devserver_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., DevServer]]:
    """Start extra dev servers: `factory(workspace=None, db=None, **options)`."""
    _require_extra()
    started: list[DevServer] = []
    base = tmp_path_factory.mktemp("noukai-dev")

    def factory(workspace: Path | None = None, db: str | Path | None = None,
                **options: Any) -> DevServer:
        path = str(db) if db is not None else str(
            base / f"server-{len(started)}.sqlite3")
        server = DevServer(workspace, path, {**FAST_OPTIONS, **options}, base)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def noukai_devserver(noukai_devserver_factory: Callable[..., DevServer]) -> DevServer:
    """A dev server with the demo workspace, shared by the whole session."""
    return noukai_devserver_factory()
