"""Flow resolution with version routing, and hot reload of draft files.

- The draft (`/v0`, and the base path while nothing is published) is the
  workspace file. It is re-read when its modification time changes, so an
  edited flow file takes effect on the next request without a restart. A file
  broken by an edit answers 400 `INVALID_TREE` naming file and field (the
  server keeps running); at start-up a broken file still stops the server.
- Runs pin the definition they started with (`RunState.flow`), so a
  step-through run is never affected by an edit mid-run (contract §7.2).
- Published versions are immutable rows in the database; production is the
  newest one.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import _store as db
from ._errors import ApiError
from ._flows import Flow, WorkspaceError, parse_flow
from ._workspace import Workspace, load_yaml

_SLUG = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class FlowResolver:
    def __init__(self, workspace: Workspace, store: db.Store) -> None:
        self.workspace = workspace
        self.store = store
        self._published: dict[tuple[str, str, str, int], Flow] = {}
        self._drafts: dict[tuple[str, str, str], tuple[Path, int, Flow]] = {}

    def draft(self, org: str, project: str, slug: str) -> Flow | None:
        """The current draft, re-parsed if its file changed; None if there is no file."""
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
        found = await self.store.call(db.latest_version, org, project, slug, version)
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
