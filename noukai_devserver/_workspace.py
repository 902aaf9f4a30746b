"""Workspace loading: orgs, projects, API keys, credits and flow files.

Layout of a workspace directory::

    noukai.yaml                         orgs, projects, keys, retention
    flows/<org>/<project>/<slug>.yaml   one flow per file; the file is the draft

Everything is validated at load; `WorkspaceError` names the file, the field
(or YAML line) and the problem. The loaded `Workspace` is immutable; balances
live in the database (they change), seeded from `credits` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from ._flows import CAPTURE_MODES, Flow, WorkspaceError, parse_flow

DEMO_WORKSPACE = Path(__file__).with_name("demo_workspace")
CONFIG_NAME = "noukai.yaml"
_SLUG_RE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class Project:
    name: str
    capture: str | None
    flows: dict[str, Flow]


@dataclass(frozen=True)
class Org:
    """`credits` is None for unlimited, else the starting balance in USD."""

    name: str
    credits: Decimal | None
    capture: str | None
    projects: dict[str, Project]


@dataclass(frozen=True)
class ApiKey:
    """`rate_limit` is requests per rate-limit window (None: unlimited)."""

    org: str
    rate_limit: int | None


@dataclass(frozen=True)
class Workspace:
    root: Path
    orgs: dict[str, Org]
    keys: dict[str, ApiKey] = field(repr=False)
    session_retention_seconds: float | None

    def flow(self, org: str, project: str, slug: str) -> Flow | None:
        proj = self.orgs.get(org, None)
        found = proj.projects.get(project) if proj else None
        return found.flows.get(slug) if found else None

    def capture_mode(self, org: str, project: str, flow: Flow) -> str:
        """Flow setting, else project, else org, else `full` (contract §11.3)."""
        o = self.orgs[org]
        return flow.capture or o.projects[project].capture or o.capture or "full"


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(str(path), "(file)", f"cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        raise WorkspaceError(str(path), where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise WorkspaceError(str(path), "(yaml)", f"invalid YAML: {exc}") from None


def _credits(value: Any, source: str, where: str) -> Decimal | None:
    if value == "unlimited":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise WorkspaceError(source, where, "must be 'unlimited' or a number of USD >= 0")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise WorkspaceError(source, where, "must be 'unlimited' or a number of USD >= 0") \
            from None
    if not amount.is_finite() or amount < 0:
        raise WorkspaceError(source, where, "must be 'unlimited' or a number of USD >= 0")
    return amount


def _capture(value: Any, source: str, where: str) -> str | None:
    if value is False:  # YAML 1.1 reads a bare `off` as false
        return "off"
    if value is not None and value not in CAPTURE_MODES:
        raise WorkspaceError(source, where, f"must be one of {CAPTURE_MODES}")
    return value  # type: ignore[no-any-return]


def _load_flows(root: Path, org: str, project: str) -> dict[str, Flow]:
    flows: dict[str, Flow] = {}
    folder = root / "flows" / org / project
    if not folder.is_dir():
        return flows
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml"):
            continue
        slug = path.stem
        if not _SLUG_RE.match(slug):
            raise WorkspaceError(str(path), "(file name)", "slug must match [A-Za-z0-9._-]+")
        flows[slug] = parse_flow(load_yaml(path), slug, str(path))
    return flows


def load_workspace(root: Path) -> Workspace:
    """Load and validate a workspace directory (raises `WorkspaceError`)."""
    config_path = root / CONFIG_NAME
    src = str(config_path)
    if not config_path.is_file():
        raise WorkspaceError(src, "(file)", "missing: a workspace needs noukai.yaml")
    raw = load_yaml(config_path)
    if not isinstance(raw, dict):
        raise WorkspaceError(src, "(top level)", "must be a mapping")
    orgs_raw = raw.get("orgs")
    if not isinstance(orgs_raw, dict) or not orgs_raw:
        raise WorkspaceError(src, "orgs", "required: a mapping of org name to org")
    orgs: dict[str, Org] = {}
    for oname, oraw in orgs_raw.items():
        where = f"orgs.{oname}"
        if not isinstance(oraw, dict):
            raise WorkspaceError(src, where, "must be a mapping")
        if not _SLUG_RE.match(str(oname)):
            raise WorkspaceError(src, where, "org names must match [A-Za-z0-9._-]+")
        projects_raw = oraw.get("projects")
        if not isinstance(projects_raw, dict) or not projects_raw:
            raise WorkspaceError(src, f"{where}.projects", "required: a mapping of projects")
        projects: dict[str, Project] = {}
        for pname, praw in projects_raw.items():
            praw = praw or {}
            if not isinstance(praw, dict):
                raise WorkspaceError(src, f"{where}.projects.{pname}", "must be a mapping")
            cap = _capture(praw.get("capture"), src, f"{where}.projects.{pname}.capture")
            projects[str(pname)] = Project(str(pname), cap,
                                           _load_flows(root, str(oname), str(pname)))
        orgs[str(oname)] = Org(
            str(oname),
            _credits(oraw.get("credits", "unlimited"), src, f"{where}.credits"),
            _capture(oraw.get("capture"), src, f"{where}.capture"),
            projects,
        )
    keys_raw = raw.get("keys")
    if not isinstance(keys_raw, dict) or not keys_raw:
        raise WorkspaceError(src, "keys", "required: a mapping of API key to {org: ...}")
    keys: dict[str, ApiKey] = {}
    for index, (key, kraw) in enumerate(keys_raw.items()):
        where = f"keys[{index}]"  # never echo the key itself into an error message
        if not isinstance(key, str) or not key.startswith("nk_"):
            raise WorkspaceError(src, where, "API keys must be strings starting with 'nk_'")
        if not isinstance(kraw, dict) or kraw.get("org") not in orgs:
            raise WorkspaceError(src, f"{where}.org", "must name an org defined under 'orgs'")
        limit = kraw.get("rateLimit")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise WorkspaceError(src, f"{where}.rateLimit", "must be an integer >= 1 or null")
        keys[key] = ApiKey(kraw["org"], limit)
    retention = raw.get("sessionRetentionSeconds")
    if retention is not None and (not isinstance(retention, int | float) or retention <= 0):
        raise WorkspaceError(src, "sessionRetentionSeconds", "must be a number > 0 or null")
    return Workspace(root, orgs, keys, None if retention is None else float(retention))
