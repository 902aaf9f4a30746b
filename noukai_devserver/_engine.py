"""The engine: runs one top-level block of a run as an async generator of events.

Each yielded event is a wire payload (camelCase, `eventType`, `executionId`),
already appended to the run's event log. A block's events end with exactly one
of `step_completed`, `step_error` or `step_paused_for_tool_calls`; inner loop
blocks only produce drop-safe `step_progress` events, so a client counting
`step_completed` frames counts top-level blocks (contract §7.1).

Every attempt of every block (and loop index) is written to `attempts` with
its timings, tokens, cost and capture-filtered snapshots (`_record`, one row
per attempt, rewritten as the attempt moves from running to its outcome). A cancelled block
(client gone, shutdown) records its attempt as failed with code `CANCELLED`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import _store as db
from ._blocks import BlockFailed, EngineOptions, Resume, Usage, apply_overrides
from ._capture import as_context, snapshot
from ._flows import Block, render
from ._models import SLOW_MODELS, ModelFailure, ModelRequest, complete, cost_usd, money
from ._provider import PREFIX as PROVIDER_PREFIX
from ._provider import OpenAICompatible
from ._runs import Balances, Runs, RunState, utc_now


class Engine:
    """Runs blocks; never changes a run's lifecycle state (that is `Driver`'s job),
    only its bookkeeping: attempt counters, tool-pause details, tokens, cost and
    the event log."""

    def __init__(self, runs: Runs, balances: Balances, options: EngineOptions) -> None:
        self.runs = runs
        self.balances = balances
        self.options = options
        self.provider = OpenAICompatible(options.openai_base_url)

    # -- helpers -------------------------------------------------------------
    def emit(self, run: RunState, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {"eventType": payload.pop("eventType"), "executionId": run.id, **payload}
        self.runs.record(run, payload)
        return payload

    def _context(self, run: RunState, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx: dict[str, Any] = dict(run.outputs)
        ctx.update({"steps": dict(run.outputs), "message": run.inputs.get("message") or "",
                    "parameters": run.inputs.get("parameters") or {}})
        overrides = run.inputs.get("inputOverrides") or {}
        ctx.update({k: v for k, v in overrides.items() if not isinstance(v, dict)})
        if isinstance(extra, dict):
            ctx.update(extra)
        return ctx

    def _begin(self, run: RunState, block: Block, loop_index: int | None, model: str | None,
               input_data: Any) -> _Attempt:
        """Number and order a new attempt of `block` (counters live in `run.meta`)."""
        counts = run.meta.setdefault("attempts", {})
        key = f"{block.id}|{loop_index}"
        counts[key] = int(counts.get(key, 0)) + 1
        return _Attempt(block, loop_index, int(counts[key]), self._order(run), model,
                        input_data)

    def _record(self, run: RunState, att: _Attempt, status: str, *, usage: Usage | None = None,
                output: Any = None, error: dict[str, Any] | None = None) -> None:
        """Write the attempt's row as it stands now (one row per attempt, replaced)."""
        if run.capture == "off":
            return
        limit = self.options.snapshot_limit
        inp, in_size, cut_in = snapshot(as_context(att.input_data), run.capture, is_input=True,
                                        limit=limit)
        out, out_size, cut_out = snapshot(output, run.capture, is_input=False, limit=limit)
        done = status != "running"
        block, loop_index = att.block, att.loop_index
        row = {
            "run_id": run.id, "akey": f"{block.id}|{loop_index}|{att.number}",
            "ord": att.order, "step_id": block.id, "top_level": int(loop_index is None),
            "loop_index": loop_index, "attempt": att.number, "status": status,
            "started_at": att.started_at, "completed_at": utc_now() if done else None,
            "duration_ms": int(max(0.0, time.time() - att.started_ts) * 1000) if done else None,
            "model": att.model,
            "prompt_tokens": usage.prompt if usage else None,
            "completion_tokens": usage.completion if usage else None,
            "total_tokens": (usage.prompt + usage.completion) if usage else None,
            "cost": money(usage.cost) if usage else None,
            "input_json": inp, "output_json": out,
            "error_json": error if run.capture != "off" else None,
            "input_size": in_size, "output_size": out_size if output is not None else None,
            "truncated": int(cut_in or cut_out),
        }
        self.runs.store.submit(db.insert, "attempts", row)

    def _order(self, run: RunState) -> int:
        run.meta["ord"] = int(run.meta.get("ord", 0)) + 1
        return int(run.meta["ord"])

    # -- one model call ---------------------------------------------------------
    async def _model_call(self, run: RunState, block: Block, conversation: list[dict[str, Any]],
                          tools: list[dict[str, Any]], attempt: int) -> Any:
        if block.model in SLOW_MODELS:
            await asyncio.sleep(self.options.slow_seconds)
        request = ModelRequest(
            model=block.model, system=block.system, conversation=conversation,
            caller_text=str(run.inputs.get("callerText") or ""), tools=tools,
            tool_choice=run.inputs.get("toolChoice"), attempt=attempt,
            fail_times=block.fail_times, id_seed=f"{run.id}:{block.id}",
        )
        if block.model.startswith(PROVIDER_PREFIX):
            return await self.provider.complete(request)
        return complete(request)

    def _conversation(self, run: RunState, prompt: str) -> list[dict[str, Any]]:
        history = run.inputs.get("messages") or []
        if history:
            return [*history[:-1], {"role": "user", "content": prompt}]
        return [{"role": "user", "content": prompt}]

    # -- public: one top-level block -------------------------------------------
    async def run_block(self, run: RunState, index: int,
                        resume: Resume | None = None) -> AsyncIterator[dict[str, Any]]:
        block = apply_overrides(run.flow.blocks[index],
                                (run.inputs.get("blockOverrides") or {}).get(
                                    run.flow.blocks[index].id))
        if resume is None:
            yield self.emit(run, {"eventType": "step_started", "stepId": block.id,
                                  "name": block.name, "stepIndex": index})
        if block.type == "llm":
            async for event in self._run_llm(run, block, index, resume):
                yield event
        else:
            async for event in self._run_plain(run, block, index):
                yield event

    async def _run_plain(self, run: RunState, block: Block,
                         index: int) -> AsyncIterator[dict[str, Any]]:
        t0 = time.monotonic()
        usage = Usage()
        ctx = self._context(run, (run.inputs.get("inputOverrides") or {}).get(block.id))
        input_data = {"template": block.template} if block.type == "template" else {
            "over": block.over}
        yield self.emit(run, {"eventType": "step_input", "stepId": block.id,
                              "inputData": input_data})
        att = self._begin(run, block, None, None, input_data)
        if block.type == "loop":  # a template renders without yielding: nobody could see it run
            self._record(run, att, "running")
        try:
            if block.type == "template":
                output = render(block.template, ctx)
            else:
                output = None
                async for item in self._run_loop(run, block, ctx, usage):
                    if isinstance(item, _LoopResult):
                        output = item.value
                    else:
                        yield item
        except BlockFailed as failure:
            err = {"code": failure.code, "message": failure.message}
            self._record(run, att, "failed", error=err)
            yield self.emit(run, {"eventType": "step_error", "stepId": block.id,
                                  "name": block.name, "stepIndex": index, "error": err})
            return
        except asyncio.CancelledError:
            self._record(run, att, "failed", error=CANCELLED)
            raise
        has_llm = usage.prompt + usage.completion > 0
        # A loop's tokens and cost are on its inner attempts in the trace (summing a
        # trace's steps must not count them twice); its step_completed carries the total.
        self._record(run, att, "completed", output=output)
        yield self._completed(run, block, index, output, t0, usage if has_llm else None)

    def _completed(self, run: RunState, block: Block, index: int, output: Any, t0: float,
                   usage: Usage | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "eventType": "step_completed", "stepId": block.id, "name": block.name,
            "stepIndex": index, "output": output,
            "durationMs": int((time.monotonic() - t0) * 1000),
        }
        if usage is not None:
            payload["tokens"] = usage.tokens()
            payload["costUsd"] = money(usage.cost)
            run.tokens_total += usage.prompt + usage.completion
            run.cost += usage.cost
            self.balances.charge(run.org, usage.cost)
        return self.emit(run, payload)

    # -- llm blocks --------------------------------------------------------------
    async def _run_llm(self, run: RunState, block: Block, index: int,
                       resume: Resume | None) -> AsyncIterator[dict[str, Any]]:
        ctx = self._context(run, (run.inputs.get("inputOverrides") or {}).get(block.id))
        prompt = render(block.prompt, ctx)
        prompt = prompt if isinstance(prompt, str) else ("" if prompt is None else str(prompt))
        tools = list(run.inputs.get("tools") or []) if block.tools else []
        t0 = time.monotonic()
        att: _Attempt | None = None
        if resume is None:
            input_data = {"model": block.model, "system": block.system, "prompt": prompt}
            yield self.emit(run, {"eventType": "step_input", "stepId": block.id,
                                  "inputData": input_data})
            conversation = self._conversation(run, prompt)
            iterations, usage = 0, Usage()
        else:
            pause = run.meta.get("pause") or {}
            input_data = pause.get("inputData") or {"model": block.model, "prompt": prompt}
            conversation, iterations = resume.conversation, resume.iterations
            usage = Usage(int(pause.get("prompt", 0)), int(pause.get("completion", 0)),
                           Decimal(str(pause.get("cost", "0"))))
            # The paused attempt continues: same number, order and start.
            att = _Attempt(block, None, int(pause.get("attempt", 1)),
                           int(pause["order"]) if "order" in pause else self._order(run),
                           block.model, input_data,
                           str(pause.get("startedAt") or utc_now()),
                           float(pause.get("startedTs") or time.time()))
        while True:
            if att is None:
                att = self._begin(run, block, None, block.model, input_data)
                if _yields(block):
                    self._record(run, att, "running")
            try:
                reply = await self._model_call(run, block, conversation, tools, att.number)
            except ModelFailure as failure:
                err = {"code": failure.code, "message": failure.message}
                self._record(run, att, "failed", error=err)
                if att.number < block.retry.max_attempts:
                    yield self.emit(run, {"eventType": "step_progress", "stepId": block.id,
                                          "attempt": att.number, "status": "retrying",
                                          "error": err})
                    await asyncio.sleep(block.retry.backoff_seconds)
                    att = None
                    continue
                yield self.emit(run, {"eventType": "step_error", "stepId": block.id,
                                      "name": block.name, "stepIndex": index,
                                      "attempt": att.number, "error": err})
                return
            except asyncio.CancelledError:
                self._record(run, att, "failed", usage=usage, error=CANCELLED)
                raise
            iterations += 1
            usage.prompt += reply.prompt_tokens
            usage.completion += reply.completion_tokens
            usage.cost += cost_usd(block.model, reply.prompt_tokens, reply.completion_tokens)
            if reply.tool_calls:
                conversation = [*conversation,
                                {"role": "assistant", "content": None,
                                 "toolCalls": reply.tool_calls}]
                run.iterations = iterations
                run.meta["pause"] = {
                    "ids": [c["id"] for c in reply.tool_calls], "attempt": att.number,
                    "order": att.order, "startedAt": att.started_at,
                    "startedTs": att.started_ts, "prompt": usage.prompt,
                    "completion": usage.completion, "cost": money(usage.cost),
                    "inputData": input_data,
                }
                yield self.emit(run, {
                    "eventType": "step_paused_for_tool_calls", "runId": run.id,
                    "stepId": block.id, "name": block.name, "stepIndex": index,
                    "iterationsUsed": iterations, "toolCallMessages": conversation,
                    "toolCalls": reply.tool_calls, "accumulatedOutputs": dict(run.outputs),
                })
                return
            run.meta.pop("pause", None)
            output = {block.output_key: reply.text}
            if block.stream:
                try:
                    async for event in self._stream_chunks(run, block, str(reply.text)):
                        yield event
                except asyncio.CancelledError:
                    self._record(run, att, "failed", usage=usage, error=CANCELLED)
                    raise
            self._record(run, att, "completed", usage=usage, output=output)
            yield self._completed(run, block, index, output, t0, usage)
            return

    async def _stream_chunks(self, run: RunState, block: Block,
                             text: str) -> AsyncIterator[dict[str, Any]]:
        """Partial output, sentence by sentence (several `step_output` events)."""
        pieces = [p for p in text.replace(". ", ".\n").split("\n") if p]
        partial = ""
        for piece in pieces:
            partial = f"{partial} {piece}".strip()
            yield self.emit(run, {"eventType": "step_output", "stepId": block.id,
                                  "outputData": {block.output_key: partial}, "partial": True})
            await asyncio.sleep(self.options.stream_delay)

    # -- loops ---------------------------------------------------------------------
    async def _run_loop(self, run: RunState, block: Block, ctx: dict[str, Any],
                        usage: Usage) -> AsyncIterator[dict[str, Any] | _LoopResult]:
        items = render(block.over, ctx)
        if isinstance(items, str):
            items = [part.strip() for part in items.split(",") if part.strip()]
        if not isinstance(items, list) or not items:
            items = list(block.default_items)
        overrides = run.inputs.get("blockOverrides") or {}
        results: list[Any] = []
        for loop_index, item in enumerate(items):
            inner_ctx = {**ctx, "item": item, "loop": {"index": loop_index}}
            last: Any = None
            for inner in block.blocks:
                inner = apply_overrides(inner, overrides.get(inner.id))
                last = await self._inner(run, inner, loop_index, inner_ctx, usage)
                inner_ctx[inner.id] = last
                yield self.emit(run, {"eventType": "step_progress", "stepId": inner.id,
                                      "parentStepId": block.id, "loopIndex": loop_index,
                                      "output": last})
            results.append(last)
        yield self.emit(run, {"eventType": "loop_completed", "stepId": block.id,
                              "iterations": len(items)})
        yield _LoopResult({"items": results})

    async def _inner(self, run: RunState, block: Block, loop_index: int,
                     ctx: dict[str, Any], usage: Usage) -> Any:
        """One inner block of a loop iteration, with retries; raises BlockFailed."""
        while True:
            rendered = render(block.prompt if block.type == "llm" else block.template, ctx)
            input_data = {"item": ctx.get("item"), "loopIndex": loop_index, "input": rendered}
            model = block.model if block.type == "llm" else None
            att = self._begin(run, block, loop_index, model, input_data)
            own = Usage()
            try:
                if block.type == "llm":
                    reply = await self._model_call(
                        run, block, [{"role": "user", "content": str(rendered)}], [], att.number)
                    own = Usage(reply.prompt_tokens, reply.completion_tokens,
                                 cost_usd(block.model, reply.prompt_tokens,
                                          reply.completion_tokens))
                    output: Any = {block.output_key: reply.text}
                else:
                    output = rendered
            except ModelFailure as failure:
                err = {"code": failure.code, "message": failure.message}
                self._record(run, att, "failed", error=err)
                if att.number < block.retry.max_attempts:
                    await asyncio.sleep(block.retry.backoff_seconds)
                    continue
                raise BlockFailed(failure.code, f"{block.id}[{loop_index}]: {failure.message}") \
                    from None
            except asyncio.CancelledError:
                self._record(run, att, "failed", error=CANCELLED)
                raise
            usage.prompt += own.prompt
            usage.completion += own.completion
            usage.cost += own.cost
            self._record(run, att, "completed", usage=own if model else None, output=output)
            return output


def _yields(block: Block) -> bool:
    """Whether an LLM block can be observed mid-attempt (it awaits something).

    The local echo-style models answer synchronously: their attempt starts and
    ends in one event-loop step, so a "running" row would never be read by
    anyone. Writing it only for blocks that wait saves a statement per block.
    """
    return block.stream or block.model in SLOW_MODELS or block.model.startswith(PROVIDER_PREFIX)


@dataclass(frozen=True)
class _Attempt:
    """One attempt of a block (or of a loop's inner block at one loop index): what
    its row needs besides the outcome, so each outcome is one `Engine._record` call.

    `started_ts` is wall-clock time, so an attempt that paused for tools (across
    requests, even restarts) keeps its start, and `durationMs` always matches
    `completedAt - startedAt`.
    """

    block: Block
    loop_index: int | None
    number: int
    order: int
    model: str | None
    input_data: Any
    started_at: str = field(default_factory=utc_now)
    started_ts: float = field(default_factory=time.time)


CANCELLED = {"code": "CANCELLED", "message": "run cancelled"}


@dataclass(frozen=True)
class _LoopResult:
    value: Any
