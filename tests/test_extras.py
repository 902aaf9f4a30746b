"""Each integration, imported without its framework, names the extra to install.

Runs in a subprocess with the framework blocked (`sys.modules[name] = None`),
which is what Python does for a package that is not installed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    ("noukai_fastapi", "starlette", "noukai[fastapi]"),
    ("noukai_flask", "flask", "noukai[flask]"),
    ("noukai_django", "django", "noukai[django]"),
]

SCRIPT = """
import sys
sys.modules[{blocked!r}] = None
try:
    import {package}
except ImportError as exc:
    print(exc)
    raise SystemExit(3)
raise SystemExit(0)
"""


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(("package", "blocked", "extra"), CASES)
def test_missing_framework_names_the_extra(package: str, blocked: str, extra: str) -> None:
    proc = _run(SCRIPT.format(blocked=blocked, package=package))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert extra in proc.stdout


def test_core_imports_without_any_framework() -> None:
    blocked = ["fastapi", "starlette", "flask", "django", "uvicorn", "yaml"]
    script = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    script += "import noukai_core\nprint(noukai_core.__version__)\n"
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr


def test_pytest_plugin_imports_with_stdlib_and_pytest_only() -> None:
    blocked = ["fastapi", "starlette", "uvicorn", "yaml", "httpx", "pydantic", "typer"]
    script = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    script += "import noukai_devserver.pytest_plugin\n"
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
