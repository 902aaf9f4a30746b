"""Flow resolution with version routing, and hot reload of draft files.

- The draft (`/v0`, and the base path while nothing is published) is the
  workspace file. It is re-read when its modification time changes (checked
  at most once per reload interval), so an edited flow file takes effect
  without a restart. A file
  broken by an edit answers 400 `INVALID_TREE` naming file and field (the
  server keeps running); at start-up a broken file still stops the server.
- Runs pin the definition they started with (`RunState.flow`), so a
  step-through run is never affected by an edit mid-run (contract §7.2).
- Published versions are immutable rows in the database; production is the
  newest one. `noukai-dev publish` writes them from another process, so the
  resolver reads them through its own read-only connection, synchronously:
  a WAL reader never waits for the writer and the query takes microseconds,
  which keeps a thread round trip off every request. A `:memory:` database
  cannot be published to (publish needs a file), so its lookup is skipped.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from . import _store as db
from ._errors import ApiError
from ._flows import Flow, WorkspaceError, parse_flow
from ._workspace import Workspace, load_yaml

_SLUG = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


_CACHE_LIMIT = 10_000


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Slugs come from request paths: never let lookups of made-up ones grow a cache."""
    if len(cache) >= _CACHE_LIMIT and key not in cache:
        cache.clear()
    cache[key] = value


class FlowResolver:
    """Resolves (org, project, slug, version) to a flow definition.

    Looks at the disk and at the versions table at most once per
    `reload_interval` seconds per flow: an edit or a publish takes effect
    within that interval, and a busy server does not pay a file check and a
    query on every request.
    """

    def __init__(self, workspace: Workspace, store: db.Store,
                 reload_interval: float = 0.5) -> None:
        self.workspace = workspace
        self.store = store
        self.reload_interval = reload_interval
        self._published: dict[tuple[str, str, str, int], Flow] = {}
        self._drafts: dict[tuple[str, str, str], tuple[Path, int, Flow]] = {}
        self._draft_checked: dict[tuple[str, str, str], tuple[float, Flow | None]] = {}
        self._version_checked: dict[tuple[str, str, str, int | None],
                                    tuple[float, tuple[int, dict[str, Any]] | None]] = {}
        self._reader: sqlite3.Connection | None = None
        if store.path != ":memory:":
            self._reader = sqlite3.connect(f"file:{Path(store.path).resolve()}?mode=ro",
                                           uri=True, check_same_thread=False)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _version(self, org: str, project: str, slug: str,
                 version: int | None) -> tuple[int, dict[str, Any]] | None:
        if self._reader is None:
            return None
        key = (org, project, slug, version)
        now = time.monotonic()
        checked = self._version_checked.get(key)
        if checked is not None and now - checked[0] < self.reload_interval:
            return checked[1]
        found = db.latest_version(self._reader, org, project, slug, version)
        _bounded_put(self._version_checked, key, (now, found))
        return found

    def draft(self, org: str, project: str, slug: str) -> Flow | None:
        """The current draft (None if there is no file), re-checked once per interval."""
        key = (org, project, slug)
        now = time.monotonic()
        checked = self._draft_checked.get(key)
        if checked is not None and now - checked[0] < self.reload_interval:
            return checked[1]
        flow = self._load_draft(org, project, slug)
        _bounded_put(self._draft_checked, key, (now, flow))
        return flow

    def _load_draft(self, org: str, project: str, slug: str) -> Flow | None:
        if not _SLUG.match(slug):
            return None
        folder = self.workspace.root / "flows" / org / project
        for suffix in (".yaml", ".yml"):
            path = folder / f"{slug}{suffix}"
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            cached = self._drafts.get((org, project, slug))
            if cached is not None and cached[0] == path and cached[1] == mtime:
                return cached[2]
            try:
                flow = parse_flow(load_yaml(path), slug, str(path))
            except WorkspaceError as exc:
                raise ApiError(400, "INVALID_TREE", f"flow file is invalid: {exc}") from None
            self._drafts[(org, project, slug)] = (path, mtime, flow)
            return flow
        return None

    async def resolve(self, org: str, project: str, slug: str,
                      version: int | None) -> tuple[Flow, int]:
        """(flow, version number); 0 is the draft. `version` None is production."""
        if version == 0:
            draft = self.draft(org, project, slug)
            if draft is None:
                raise ApiError(404, "FLOW_NOT_FOUND", f"no draft of flow {slug!r}")
            return draft, 0
        found = self._version(org, project, slug, version)
        if found is None:
            draft = self.draft(org, project, slug)
            if draft is None:
                raise ApiError(404, "FLOW_NOT_FOUND", f"no flow {slug!r} in {org}/{project}")
            if version is None:
                return draft, 0
            raise ApiError(404, "VERSION_NOT_FOUND", f"flow {slug!r} has no version {version}")
        number, raw = found
        key = (org, project, slug, number)
        if key not in self._published:
            self._published[key] = parse_flow(raw, slug, f"(published version {number})")
        return self._published[key], number
