"""E5-E9: run summary, traces, the live trace stream, and session cassettes.

Traces are built from the `attempts` table: the full trace keeps the latest
attempt per (block, loop index) in execution order (contract §10.1); a session
keeps top-level blocks only (final attempt each), so its replay yields exactly
one completion per `step_completed` the live run sent (§11.2, §15 Q12).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from . import _store as db
from ._app import ServerState, get_state
from ._auth import authenticate, check_project, parse_version
from ._capture import SNAPSHOTS, as_context
from ._errors import ApiError, validation_error
from ._routing import RouteTable
from ._runs import RunState
from ._streams import live_trace_stream

router = RouteTable("/api/v1/seq")


async def _run_for(request: Request, org: str, project: str, slug: str,
                   run_id: str, version: str | None) -> tuple[ServerState, RunState]:
    """The run, if it belongs to the flow in the path (any version segment is accepted:
    runs are never versioned, contract §2)."""
    state = get_state(request)
    principal = authenticate(state.workspace, state.limiter, request)
    parse_version(version)
    check_project(state.workspace, principal, org, project, what="run")
    run = await state.runs.get(run_id)
    if run is None or (run.org, run.project, run.slug) != (org, project, slug):
        raise ApiError(404, "RUN_NOT_FOUND", f"no run {run_id!r} for flow {slug!r}")
    return state, run


def summary(run: RunState) -> dict[str, Any]:
    return {
        "id": run.id, "executionId": run.id, "flowId": run.flow_id, "slug": run.slug,
        "status": run.status, "triggerType": run.trigger, "startedAt": run.started_at,
        "completedAt": run.completed_at, "durationMs": run.duration_ms,
        "stepCount": run.block_count, "errorAtStep": run.error_at_step,
        "traceCaptureMode": run.capture, "tokens": {"total": run.tokens_total},
        "costUsd": f"{run.cost:.6f}", "version": run.version,
    }


def step_trace(row: dict[str, Any]) -> dict[str, Any]:
    tokens = None
    if row["total_tokens"] is not None:
        tokens = {"prompt": row["prompt_tokens"], "completion": row["completion_tokens"],
                  "total": row["total_tokens"]}
    return {
        "stepId": row["step_id"], "attempt": row["attempt"], "loopIndex": row["loop_index"],
        "status": row["status"], "startedAt": row["started_at"],
        "completedAt": row["completed_at"], "durationMs": row["duration_ms"],
        "modelUsed": row["model"], "tokens": tokens, "costUsd": row["cost"],
        "inputContext": as_context(row["input_json"]),
        "outputContext": as_context(row["output_json"]),
        "errorContext": as_context(row["error_json"]),
        "inputSizeBytes": row["input_size"], "outputSizeBytes": row["output_size"],
        "truncated": bool(row["truncated"]),
    }


def latest_per_block(rows: list[dict[str, Any]], top_level_only: bool) -> list[dict[str, Any]]:
    """Latest attempt per (step, loop index), ordered by that key's first start."""
    first: dict[tuple[str, Any], int] = {}
    latest: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        if top_level_only and not row["top_level"]:
            continue
        key = (row["step_id"], row["loop_index"])
        first.setdefault(key, row["ord"])
        if key not in latest or row["attempt"] >= latest[key]["attempt"]:
            latest[key] = row
    return [latest[k] for k in sorted(latest, key=lambda k: first[k])]


@router.get("/{org}/{project}/{slug}/runs/{run_id}")
@router.get("/{org}/{project}/{slug}/{version}/runs/{run_id}")
async def run_summary(request: Request, org: str, project: str, slug: str,
                      run_id: str, version: str | None = None) -> Response:
    _state, run = await _run_for(request, org, project, slug, run_id, version)
    return JSONResponse(summary(run))


@router.get("/{org}/{project}/{slug}/runs/{run_id}/trace")
@router.get("/{org}/{project}/{slug}/{version}/runs/{run_id}/trace")
async def run_trace(request: Request, org: str, project: str, slug: str,
                    run_id: str, version: str | None = None) -> Response:
    state, run = await _run_for(request, org, project, slug, run_id, version)
    rows = await state.store.call(db.run_attempts, run.id)
    steps = [step_trace(r) for r in latest_per_block(rows, top_level_only=False)]
    return JSONResponse({"flowRun": summary(run), "steps": steps})


def _int_query(request: Request, *names: str) -> int | None:
    for name in names:
        raw = request.query_params.get(name)
        if raw is not None:
            try:
                return int(raw)
            except ValueError:
                raise validation_error(name, "must be an integer") from None
    return None


@router.get("/{org}/{project}/{slug}/runs/{run_id}/steps/{step_id}/trace")
@router.get("/{org}/{project}/{slug}/{version}/runs/{run_id}/steps/{step_id}/trace")
async def run_step_trace(request: Request, org: str, project: str, slug: str, run_id: str,
                         step_id: str, version: str | None = None) -> Response:
    state, run = await _run_for(request, org, project, slug, run_id, version)
    loop_index = _int_query(request, "loop_index", "loopIndex")
    attempt = request.query_params.get("attempt")
    if attempt in ("latest", ""):  # the SDK's own name for the default
        attempt = None
    rows = [r for r in await state.store.call(db.run_attempts, run.id)
            if r["step_id"] == step_id
            and (loop_index is None or r["loop_index"] == loop_index)]
    if not rows:
        raise ApiError(404, "STEP_NOT_FOUND", f"no recorded attempt of step {step_id!r}")
    if attempt == "all":
        ordered = sorted(rows, key=lambda r: (r["attempt"], r["loop_index"] or -1))
        return JSONResponse({"stepId": step_id, "attempts": [step_trace(r) for r in ordered]})
    if attempt is None:
        return JSONResponse(step_trace(max(rows, key=lambda r: (r["attempt"], r["ord"]))))
    number = _int_query(request, "attempt")
    chosen = [r for r in rows if r["attempt"] == number]
    if not chosen:
        raise ApiError(404, "STEP_NOT_FOUND", f"step {step_id!r} has no attempt {number}")
    return JSONResponse(step_trace(min(chosen, key=lambda r: r["loop_index"] or -1)))


@router.get("/{org}/{project}/{slug}/runs/{run_id}/trace/stream")
@router.get("/{org}/{project}/{slug}/{version}/runs/{run_id}/trace/stream")
async def run_trace_stream(request: Request, org: str, project: str, slug: str,
                           run_id: str, version: str | None = None) -> Response:
    state, run = await _run_for(request, org, project, slug, run_id, version)
    return live_trace_stream(state, run, _last_event_id(request))


_MAX_SEQ = 2**62  # below SQLite's integer limit, beyond any run's event count


def _last_event_id(request: Request) -> int:
    """The `Last-Event-ID` to resume after: anything but ASCII digits replays the
    whole log; an id past the end replays nothing (it is clamped so the database
    can compare it)."""
    raw = request.headers.get("last-event-id", "").strip()
    if not (raw.isascii() and raw.isdigit()):
        return 0
    return min(int(raw), _MAX_SEQ)


def _session_execution(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    capture = run["capture"]
    with_snapshots = capture in SNAPSHOTS
    steps = []
    for row in latest_per_block(rows, top_level_only=True):
        steps.append({
            "stepId": row["step_id"], "blockId": row["step_id"], "attempt": row["attempt"],
            "loopIndex": row["loop_index"], "status": row["status"],
            "startedAt": row["started_at"], "completedAt": row["completed_at"],
            "durationMs": row["duration_ms"],
            "inputSnapshot": as_context(row["input_json"]) if with_snapshots else None,
            "outputSnapshot": row["output_json"] if with_snapshots else None,
            "errorSnapshot": as_context(row["error_json"]) if with_snapshots else None,
            "truncated": bool(row["truncated"]),
        })
    return {
        "executionId": run["id"], "flowId": run["flow_id"], "slug": run["slug"],
        "triggerType": run["trigger"], "status": run["status"],
        "startedAt": run["started_at"], "completedAt": run["completed_at"],
        "traceCaptureMode": capture, "snapshotsAvailable": with_snapshots,
        "steps": steps, "errorAtStep": run["error_at_step"],
    }


@router.get("/sessions/{session_id}")
async def session(request: Request, session_id: str) -> Response:
    state = get_state(request)
    principal = authenticate(state.workspace, state.limiter, request)
    try:
        canonical = str(uuid.UUID(session_id))
    except ValueError:
        raise ApiError(400, "INVALID_SESSION_ID", "session ids are UUIDs") from None
    runs = await state.store.call(db.session_runs, canonical)
    if not runs:
        raise ApiError(404, "SESSION_NOT_FOUND", f"no execution is tagged {session_id}")
    if any(r["org"] != principal.org for r in runs):
        raise ApiError(403, "FORBIDDEN", "this session holds executions of another org")
    retention = state.session_retention
    if retention is not None and time.time() - max(r["started_ts"] for r in runs) > retention:
        raise ApiError(410, "SESSION_EXPIRED", "this session is past its retention")
    executions = []
    for run in runs:
        rows = await state.store.call(db.run_attempts, run["id"])
        executions.append(_session_execution(run, rows))
    return JSONResponse({"sessionId": session_id, "executions": executions})
