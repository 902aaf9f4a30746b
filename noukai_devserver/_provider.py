"""Optional provider: a real OpenAI-compatible chat-completions endpoint.

Blocks whose model is `openai/<name>` (in a flow file or via `blockOverrides`)
call `<base URL>/chat/completions` with `<name>`. The base URL comes from
`--openai-base-url` or `NOUKAI_DEV_OPENAI_BASE_URL`, the key from
`NOUKAI_DEV_OPENAI_API_KEY` (optional for local endpoints). Without a base URL
such blocks fail with `PROVIDER_NOT_CONFIGURED`. Nothing else in the server
touches the network, and no demo flow uses this provider.

Provider failures become block failures (`PROVIDER_ERROR`), so the block's
retry policy applies; the provider's key never appears in an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from ._models import ModelFailure, ModelReply, ModelRequest

PREFIX = "openai/"
KEY_ENV = "NOUKAI_DEV_OPENAI_API_KEY"
BASE_URL_ENV = "NOUKAI_DEV_OPENAI_BASE_URL"


def _to_openai(turn: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": turn["role"], "content": turn.get("content")}
    if turn.get("toolCalls"):
        out["tool_calls"] = turn["toolCalls"]
    if turn["role"] == "tool":
        out["tool_call_id"] = turn.get("toolCallId")
    return out


class OpenAICompatible:
    def __init__(self, base_url: str | None, timeout: float = 60.0) -> None:
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or "").rstrip("/")
        self.timeout = timeout

    async def complete(self, req: ModelRequest) -> ModelReply:
        if not self.base_url:
            raise ModelFailure("PROVIDER_NOT_CONFIGURED",
                               f"set {BASE_URL_ENV} (or --openai-base-url) to use {req.model}")
        messages = [{"role": "system", "content": req.system}] if req.system else []
        messages += [_to_openai(t) for t in req.conversation]
        body: dict[str, Any] = {"model": req.model[len(PREFIX):], "messages": messages}
        if req.tools:
            body["tools"] = req.tools
            if req.tool_choice is not None:
                body["tool_choice"] = req.tool_choice
        headers = {}
        key = os.environ.get(KEY_ENV)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(f"{self.base_url}/chat/completions", json=body,
                                             headers=headers)
            if response.status_code >= 400:
                raise ModelFailure("PROVIDER_ERROR",
                                   f"provider answered HTTP {response.status_code}")
            data = response.json()
            message = data["choices"][0]["message"]
        except httpx.HTTPError as exc:
            raise ModelFailure("PROVIDER_ERROR",
                               f"provider unreachable: {type(exc).__name__}") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelFailure("PROVIDER_ERROR", "provider sent an unexpected body") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        calls = [{"id": str(c.get("id")), "type": "function",
                  "function": {"name": str(c["function"]["name"]),
                               "arguments": _arguments(c["function"].get("arguments"))}}
                 for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        text = message.get("content")
        prompt = int(usage.get("prompt_tokens") or 1)
        completion = int(usage.get("completion_tokens") or 1)
        return ModelReply(None if calls else str(text or ""), calls, max(1, prompt),
                          max(1, completion))


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value or {})
