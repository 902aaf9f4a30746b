"""DESIGN rules that are checkable: sync/async parity, and sans-I/O modules free of I/O."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import noukai_core as nk

PACKAGE = Path(nk.__file__).parent

# (sync, async) pairs of public classes; async-only names map to their sync twin.
PAIRS = [
    (nk.Noukai, nk.AsyncNoukai),
    (nk.Flow, nk.AsyncFlow),
    (nk.Run, nk.AsyncRun),
    (nk.Job, nk.AsyncJob),
]
TWIN_NAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    methods = {}
    for name, value in inspect.getmembers(cls):
        if (
            name.startswith("_")
            and name not in TWIN_NAMES
            and name not in TWIN_NAMES.values()
            and name != "__init__"
        ):
            continue
        if inspect.isfunction(value):
            methods[name] = inspect.signature(value)
    return methods


def shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_sync_and_async_twins_have_the_same_signatures(sync_cls: type, async_cls: type) -> None:
    sync_methods = public_methods(sync_cls)
    async_methods = public_methods(async_cls)
    expected_async_names = {TWIN_NAMES.get(name, name) for name in sync_methods}
    assert expected_async_names == set(async_methods)
    for name, sig in sync_methods.items():
        twin = async_methods[TWIN_NAMES.get(name, name)]
        if name in ("__exit__",):
            continue
        assert shape(sig) == shape(twin), f"{sync_cls.__name__}.{name} differs from its twin"


SANS_IO = [
    "_protocol/_sse.py",
    "_protocol/_cursor.py",
    "_protocol/_execute.py",
    "_protocol/_replay.py",
    "_protocol/_requests.py",
    "_protocol/_responses.py",
    "_protocol/_retry.py",
    "_protocol/_polling.py",
    "_protocol/_tool_rounds.py",
    "_protocol/_wire.py",
    "_transport/_redact.py",
    "_errors.py",
    "_config.py",
    "_scope.py",
    "_trace.py",
]
FORBIDDEN = {"httpx", "asyncio", "socket", "anyio", "trio"}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (imports for annotations only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def closure(relative: str) -> set[str]:
    """Every module imported by `relative`, following our own modules transitively."""
    seen: set[str] = set()
    todo = [PACKAGE / relative]
    found: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            found.add(name)
            if name.startswith("noukai_core."):
                parts = name.split(".")[1:]
                candidate = PACKAGE.joinpath(*parts)
                for option in (candidate.with_suffix(".py"), candidate / "__init__.py"):
                    if option.exists():
                        todo.append(option)
    return found


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_network_or_event_loop(module: str) -> None:
    imported = {name.split(".")[0] for name in closure(module)}
    assert not imported & FORBIDDEN, f"{module} reaches {imported & FORBIDDEN}"


def test_only_the_transport_imports_httpx() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "web" not in path.relative_to(PACKAGE).parts
        and "httpx" in {n.split(".")[0] for n in imports_of(path)}
        and path.relative_to(PACKAGE).parts[0] != "_transport"
    ]
    assert offenders == []


def test_modules_stay_small() -> None:
    big = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "web" not in p.relative_to(PACKAGE).parts and len(p.read_text().splitlines()) > 400
    ]
    assert big == []


def test_scope_twins_take_the_same_arguments() -> None:
    assert shape(inspect.signature(nk.trace_scope)) == shape(inspect.signature(nk.trace_scope_sync))
    assert nk.replay is nk.trace
    assert nk.replay_scope is nk.trace_scope and nk.replay_scope_sync is nk.trace_scope_sync


NO_REQUEST = {"flow", "run", "close", "aclose", "__init__", "__enter__", "__exit__"}
NO_REQUEST |= {"__aenter__", "__aexit__"}


@pytest.mark.parametrize(
    "cls",
    [cls for pair in PAIRS[1:] for cls in pair] + [nk.PausedResult],
    ids=lambda c: c.__name__,
)
def test_every_method_that_makes_a_request_takes_a_timeout_in_seconds(cls: type) -> None:
    """Issue 5 item 15: `timeout` is in seconds everywhere, and every call takes one."""
    methods = {
        name: inspect.signature(value)
        for name, value in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in NO_REQUEST
    }
    if cls is nk.PausedResult:
        methods = {name: methods[name] for name in ("resume", "resume_sync")}
    missing = [
        name
        for name, sig in methods.items()
        if name not in NO_REQUEST and "timeout" not in sig.parameters
    ]
    assert methods.keys() - NO_REQUEST, f"{cls.__name__} has no request-making method"
    assert missing == []


def test_the_two_resumes_of_a_paused_result_take_the_same_arguments() -> None:
    resume = inspect.signature(nk.PausedResult.resume)
    assert shape(resume) == shape(inspect.signature(nk.PausedResult.resume_sync))
