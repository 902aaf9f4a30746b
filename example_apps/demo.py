"""`make demo`: start the local dev server and the FastAPI example app on loopback.

Each part is started only if it exists in this checkout, so the command keeps
working while the project grows. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

DEVSERVER_URL = "http://127.0.0.1:8080"
EXAMPLE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Part:
    """One process of the demo: the module to run, and the URL that answers once it is up."""

    module: str
    ready_url: str
    banner: str


PARTS = (
    Part(
        "noukai_devserver",
        f"{DEVSERVER_URL}/",
        f"Noukai dev server: {DEVSERVER_URL}/api/v1 (key nk_local_dev, flows local/demo/*)",
    ),
    Part(
        "example_apps.fastapi_app",
        f"{EXAMPLE_URL}/",
        f"FastAPI example app: open {EXAMPLE_URL}/ in your browser",
    ),
)


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answered: it is up
        except OSError:
            time.sleep(0.2)
    return False


def main() -> int:
    env = {**os.environ, "NOUKAI_BASE_URL": f"{DEVSERVER_URL}/api/v1"}
    env.setdefault("NOUKAI_API_KEY", "nk_local_dev")
    started: list[subprocess.Popen[bytes]] = []
    try:
        for part in PARTS:
            if not _exists(part.module):
                print(f"(skipping {part.module}: not in this checkout yet)")
                continue
            process = subprocess.Popen([sys.executable, "-m", part.module], env=env)
            started.append(process)
            if not _wait_ready(part.ready_url, process, time.monotonic() + 30):
                print(f"{part.module} did not come up; see its output above", file=sys.stderr)
                return 1
            print(part.banner, flush=True)
        if not started:
            print("nothing to start yet")
            return 0
        print("Press Ctrl-C to stop.", flush=True)
        while all(p.poll() is None for p in started):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
