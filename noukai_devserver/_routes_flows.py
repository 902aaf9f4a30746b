"""E1-E4: execute, step, jobs submit and poll.

Each handler keeps the contract's order: authenticate, org/project, flow and
version, body, credits, run (§1.6). Version routing is by path only (§2).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from ._app import ServerState, get_state
from ._auth import Principal, authenticate, check_project, parse_version
from ._blocks import Resume
from ._errors import ApiError
from ._flows import Flow
from ._idempotency import HEADER, Claim, once
from ._jobs import job_status
from ._requests import (
    FlowRequest,
    check_tool_results,
    normalise_turns,
    parse_flow_request,
    read_json,
)
from ._routing import RouteTable
from ._runs import RunState, new_execution_id
from ._streams import step_stream

router = RouteTable("/api/v1/seq/{org}/{project}/{slug}")


async def _preflight(request: Request, org: str, project: str, slug: str,
                     version: str | None) -> tuple[ServerState, Principal, Flow, int]:
    state = get_state(request)
    principal = authenticate(state.workspace, state.limiter, request)
    if state.shutting_down:
        raise ApiError(503, "SERVER_SHUTTING_DOWN", "the dev server is shutting down")
    check_project(state.workspace, principal, org, project)
    flow, number = await state.resolver.resolve(org, project, slug, parse_version(version))
    return state, principal, flow, number


def _check_credits(state: ServerState, org: str) -> None:
    if not state.balances.has_credit(org):
        raise ApiError(402, "INSUFFICIENT_CREDITS",
                       f"org {org!r} has no credits left; top up to run flows")


def _fresh_inputs(flow: Flow, req: FlowRequest, *, allow_messages: bool) -> dict[str, Any]:
    """Validate a fresh call's inputs and return the run's `inputs` record."""
    messages = None
    if req.messages is not None:
        if not allow_messages:
            raise ApiError(400, "MESSAGES_NOT_SUPPORTED", "messages is only accepted on /execute")
        if req.message:
            raise ApiError(400, "MESSAGE_AND_MESSAGES", "send either message or messages")
        messages = normalise_turns(req.messages, "messages", tool_results=False)
    caller = req.message or ""
    if messages:
        user_turns = [t for t in messages if t["role"] == "user"]
        last = user_turns[-1]["content"] if user_turns else ""
        caller = last if isinstance(last, str) else str(last)
    if flow.message_required and not caller:
        raise ApiError(400, "MISSING_MESSAGE", f"flow {flow.slug!r} needs a message")
    missing = [p for p in flow.required_parameters if p not in req.parameters]
    if missing:
        raise ApiError(400, "MISSING_PARAMETER", f"missing required parameters {missing}",
                       extra={"parameters": missing})
    if req.tools:
        if flow.tools_in_loop():
            raise ApiError(400, "TOOLS_IN_NON_SEQUENTIAL_STEP", "tools inside a loop block")
        if not flow.uses_tools():
            raise ApiError(400, "TOOLS_NOT_ENABLED",
                           f"no block of flow {flow.slug!r} has tools enabled")
    return {
        "message": caller, "messages": messages, "callerText": caller,
        "parameters": req.parameters, "attachments": req.attachments,
        "blockOverrides": req.block_overrides, "inputOverrides": req.input_overrides,
        "tools": req.tools, "toolChoice": req.tool_choice,
    }


def _new_run(state: ServerState, request: Request, org: str, project: str, flow: Flow,
             version: int, trigger: str, inputs: dict[str, Any], trace: bool) -> RunState:
    capture = "full" if trace else state.workspace.capture_mode(org, project, flow)
    session = canonical_session_id(request.headers.get("x-session-id") or None)
    return RunState(id=new_execution_id(), org=org, project=project, slug=flow.slug, flow=flow,
                    version=version, trigger=trigger, session_id=session, capture=capture,
                    inputs=inputs)


def canonical_session_id(value: str | None) -> str | None:
    """UUIDs are stored lower-case and hyphenated, so any spelling fetches the session;
    other strings (the SDK allows them) are kept as sent."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _session_headers(run: RunState, request: Request) -> dict[str, str]:
    """Echo the session: as the client spelled it, else (resumes) the run's tag."""
    session = request.headers.get("x-session-id") or run.session_id
    return {"X-Noukai-Session": session} if session else {}


def _result_body(run: RunState, last: dict[str, Any]) -> dict[str, Any]:
    base = {"executionId": run.id, "flowId": run.flow_id, "blockCount": run.block_count}
    kind = last["eventType"]
    if kind == "step_paused_for_tool_calls":
        return {"status": "tool_calls_required", **base, "pausedAtStep": last["stepId"],
                "iterationsUsed": last["iterationsUsed"],
                "toolCallMessages": last["toolCallMessages"], "toolCalls": last["toolCalls"],
                "accumulatedOutputs": last["accumulatedOutputs"]}
    if kind == "flow_completed":
        return {"status": "completed", "result": last.get("result"), **base}
    return {"status": "failed", "result": None, **base,
            "error": {**(last.get("error") or {}), "stepId": last.get("stepId")}}


async def _load_run(state: ServerState, run_id: str | None, org: str, project: str,
                    slug: str, code: str, status: int) -> RunState:
    run = await state.runs.get(run_id) if run_id else None
    if run is None or (run.org, run.project, run.slug) != (org, project, slug):
        raise ApiError(status, code, f"no run {run_id!r} for flow {slug!r}")
    return run


def _resume_of(state: ServerState, run: RunState, req: FlowRequest) -> Resume:
    assert req.tool_call_messages is not None
    conversation = normalise_turns(req.tool_call_messages, "toolCallMessages",
                                   tool_results=True)
    check_tool_results(conversation, list((run.meta.get("pause") or {}).get("ids", [])))
    iterations = max(req.iterations_used, run.iterations)
    if iterations >= state.options.iteration_cap:
        raise ApiError(409, "TOOL_ITERATION_LIMIT",
                       f"block {run.paused_step!r} reached {state.options.iteration_cap} "
                       "tool-call iterations")
    return Resume(conversation, iterations)


async def _guarded(state: ServerState, request: Request, principal: Principal,
                   body: dict[str, Any],
                   work: Callable[[], Awaitable[tuple[dict[str, Any], dict[str, str]]]]
                   ) -> Response:
    """A JSON answer, run at most once under the request's Idempotency-Key."""

    async def answer(claim: Claim | None) -> Response:
        result, headers = await work()
        if claim is not None:
            await claim.finish(200, result)
        return JSONResponse(result, headers=headers)

    return await once(state.idempotency, principal.key_id, request.url.path,
                      request.headers.get(HEADER), body, answer)


@router.post("/execute")
@router.post("/{version}/execute")
async def execute(request: Request, org: str, project: str, slug: str,
                  version: str | None = None) -> Response:
    state, principal, flow, number = await _preflight(request, org, project, slug, version)
    body = await read_json(request, state.options.max_body_bytes)
    return await _guarded(state, request, principal, body, functools.partial(
        _execute, state, request, org, project, slug, flow, number, body))


async def _execute(state: ServerState, request: Request, org: str, project: str, slug: str,
                   flow: Flow, number: int,
                   body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    req = parse_flow_request(body)
    if req.is_execute_resume:
        run = await _load_run(state, req.execution_id, org, project, slug,
                              "EXECUTION_ID_INVALID", 400)
        if run.trigger != "execute" or run.state != "paused_tools":
            raise ApiError(400, "EXECUTION_ID_INVALID", "that execution is not paused for tools")
        if req.paused_at_step != run.paused_step:
            raise ApiError(400, "PAUSED_STEP_INVALID",
                           f"execution is paused at {run.paused_step!r}")
        resume = _resume_of(state, run, req)
        _check_credits(state, org)
        start = run.paused_index or 0
        run.state = "active"  # claimed now: a concurrent second resume is refused
    else:
        inputs = _fresh_inputs(flow, req, allow_messages=True)
        _check_credits(state, org)
        run = _new_run(state, request, org, project, flow, number, "execute", inputs,
                       req.trace)
        state.driver.start(run)
        resume, start = None, 0
    last = await _until_shutdown(state, _last_event(
        state.driver.drive(run, start, run_remaining=True, resume=resume)))
    return _result_body(run, last), _session_headers(run, request)


async def _last_event(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    async for event in events:
        last = event
    return last


async def _until_shutdown(state: ServerState,
                          work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run `work`, but answer 503 (and cancel it) if the server starts shutting down.

    Without this, uvicorn would wait for a slow /execute and then cancel it
    from outside after its graceful timeout.
    """
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(state.shutdown_event.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel(msg="the dev server is shutting down")
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ApiError(503, "SERVER_SHUTTING_DOWN", "the dev server is shutting down")
    return task.result()


@router.post("/step")
@router.post("/{version}/step")
async def step(request: Request, org: str, project: str, slug: str,
               version: str | None = None) -> Response:
    state, principal, flow, number = await _preflight(request, org, project, slug, version)
    if number == 0 and version is not None:
        raise ApiError(400, "INVALID_VERSION", "step-through is not supported on the draft (v0)")
    body = await read_json(request, state.options.max_body_bytes)

    async def stream(claim: Claim | None) -> Response:
        return await _step(state, request, org, project, slug, flow, number, body,
                           None if claim is None else claim.stream_ended)

    return await once(state.idempotency, principal.key_id, request.url.path,
                      request.headers.get(HEADER), body, stream)


async def _step(state: ServerState, request: Request, org: str, project: str, slug: str,
                flow: Flow, number: int, body: dict[str, Any],
                on_close: Callable[[], None] | None) -> Response:
    req = parse_flow_request(body)
    prelude: list[dict[str, Any]] = []
    resume = None
    if req.execution_id is None:
        if req.step_index != 0 or req.tool_call_messages is not None:
            raise ApiError(400, "INVALID_FIRST_CALL",
                           "a first /step call has no executionId and stepIndex 0")
        inputs = _fresh_inputs(flow, req, allow_messages=False)
        _check_credits(state, org)
        run = _new_run(state, request, org, project, flow, number, "step", inputs, req.trace)
        prelude.append(state.driver.start(run))
        start = 0
    else:
        run = await _load_run(state, req.execution_id, org, project, slug, "RUN_NOT_FOUND", 404)
        if run.trigger != "step":
            raise ApiError(404, "RUN_NOT_FOUND", "that execution is not a step-through run")
        if run.state == "done":
            raise ApiError(409, "RUN_FINISHED", f"run already {run.status}")
        if run.state == "active":
            raise ApiError(409, "RUN_BUSY", "a block of this run is executing right now")
        start = req.step_index
        if not 0 <= start < run.block_count or start > run.completed_count:
            raise ApiError(400, "INVALID_STEP_INDEX",
                           f"stepIndex must be between 0 and {run.completed_count}")
        if req.tool_call_messages is not None:
            if run.state != "paused_tools" or start != run.paused_index:
                raise ApiError(400, "PAUSED_STEP_INVALID",
                               "no tool pause at that stepIndex to resume")
            resume = _resume_of(state, run, req)
        else:
            run.rerun_count = run.rerun_count + 1 if start == run.last_index else 0
            if run.rerun_count > state.options.rerun_limit:
                raise ApiError(409, "STEP_RERUN_LIMIT",
                               f"stepIndex {start} was re-run over "
                               f"{state.options.rerun_limit} times in a row")
        run.outputs.update(req.accumulated_outputs)
        run.inputs.update({"tools": req.tools, "toolChoice": req.tool_choice,
                           "blockOverrides": req.block_overrides,
                           "inputOverrides": req.input_overrides})
        _check_credits(state, org)
        run.state = "active"  # claimed now: an overlapping call gets RUN_BUSY
    events = state.driver.drive(run, start, run_remaining=req.run_remaining, resume=resume)
    return step_stream(state, run, prelude, events, _session_headers(run, request), on_close)


@router.post("/jobs")
@router.post("/{version}/jobs")
async def submit_job(request: Request, org: str, project: str, slug: str,
                     version: str | None = None) -> Response:
    state, principal, flow, number = await _preflight(request, org, project, slug, version)
    body = await read_json(request, state.options.max_body_bytes)
    return await _guarded(state, request, principal, body, functools.partial(
        _submit, state, request, org, project, flow, number, body))


async def _submit(state: ServerState, request: Request, org: str, project: str, flow: Flow,
                  number: int, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    req = parse_flow_request(body)
    if req.tools:
        raise ApiError(400, "TOOLS_REQUIRE_SYNC_EXECUTE", "tools need /execute or /step")
    inputs = _fresh_inputs(flow, req, allow_messages=False)
    _check_credits(state, org)
    run = _new_run(state, request, org, project, flow, number, "job", inputs, req.trace)
    run.status, run.state = "pending", "queued"
    state.driver.start(run)
    await state.runs.flush()
    state.jobs.submit(run)
    return ({"executionId": run.id, "status": "pending", "flowId": run.flow_id,
             "blockCount": run.block_count}, _session_headers(run, request))


@router.get("/jobs/{execution_id}")
@router.get("/{version}/jobs/{execution_id}")
async def poll_job(request: Request, org: str, project: str, slug: str,
                   execution_id: str, version: str | None = None) -> Response:
    state = get_state(request)
    principal = authenticate(state.workspace, state.limiter, request)
    parse_version(version)
    check_project(state.workspace, principal, org, project)
    run = await state.runs.get(execution_id)
    if run is None or run.trigger != "job" or (run.org, run.project, run.slug) != (
            org, project, slug):
        raise ApiError(404, "JOB_NOT_FOUND", f"no job {execution_id!r} for flow {slug!r}")
    status = job_status(run)
    return JSONResponse({
        "executionId": run.id, "status": status,
        "result": run.result if status == "completed" else None,
        "error": run.job_error if status == "failed" else None,
        "flowId": run.flow_id, "startedAt": run.started_at, "completedAt": run.completed_at,
    })
