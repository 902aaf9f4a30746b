"""Which request fields a browser may set when it starts a flow.

A passthrough endpoint runs a flow with the app's API key on behalf of an
untrusted browser, so the browser may set only what the app allows: by
default the message and nothing else. Parameters are allowed by name; tools,
block overrides and the version only when the app opts in. Anything else in
the request is refused (422) rather than ignored, so a client that believes it
set a field learns that it did not.

The result of `BrowserInputPolicy.parse` is the keyword arguments for
`AsyncFlow.events(...)`; framework adapters only turn their request into a
plain `dict` (JSON body, or query parameters for a GET).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: Request keys a browser may send, in either spelling, and the `events()`
#: keyword each becomes.
_KEYWORDS: dict[str, str] = {
    "message": "message",
    "parameters": "parameters",
    "version": "version",
    "block_overrides": "block_overrides",
    "blockOverrides": "block_overrides",
    "tools": "tools",
    "tool_choice": "tool_choice",
    "toolChoice": "tool_choice",
}


class BrowserInputError(ValueError):
    """The browser's request is not acceptable; maps to 422 with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BrowserInputPolicy:
    """What a browser may set. Defaults: a message (required), nothing else.

    `parameters`: parameter names the browser may set, or `"*"` for any.
    `require_message`: refuse a request without a non-empty message.
    `max_message_chars`: refuse longer messages (a browser should not be able
    to spend the app's credits on megabytes of prompt).
    """

    allow_message: bool = True
    require_message: bool = True
    parameters: frozenset[str] | Literal["*"] = frozenset()
    allow_version: bool = False
    allow_block_overrides: bool = False
    allow_tools: bool = False
    max_message_chars: int = 20_000

    @property
    def max_body_bytes(self) -> int:
        """The largest request body an adapter should read before refusing it (413).

        Room for the longest allowed message in UTF-8 (4 bytes a character at
        most) plus 64 KiB for parameters and JSON punctuation, so a browser
        cannot make the app buffer more than its policy could ever accept.
        """
        return self.max_message_chars * 4 + 64 * 1024

    def _allowed_keywords(self) -> set[str]:
        allowed = {"parameters"}
        if self.allow_message:
            allowed.add("message")
        if self.allow_version:
            allowed.add("version")
        if self.allow_block_overrides:
            allowed.add("block_overrides")
        if self.allow_tools:
            allowed |= {"tools", "tool_choice"}
        return allowed

    def parse(self, body: object) -> dict[str, Any]:
        """Keyword arguments for `events()` from a JSON body; raises `BrowserInputError`."""
        if not isinstance(body, Mapping):
            raise BrowserInputError("INVALID_BODY", "The request body must be a JSON object.")
        allowed = self._allowed_keywords()
        kwargs: dict[str, Any] = {}
        for key, value in body.items():
            keyword = _KEYWORDS.get(key) if isinstance(key, str) else None
            if keyword is None or keyword not in allowed:
                raise BrowserInputError("FIELD_NOT_ALLOWED", f"The field {key!r} cannot be set.")
            kwargs[keyword] = value
        if "message" in kwargs:
            kwargs["message"] = self._check_message(kwargs["message"])
        elif self.allow_message and self.require_message:
            raise BrowserInputError("MISSING_MESSAGE", "A message is required.")
        parameters = kwargs.get("parameters", {})
        if parameters is None:
            parameters = {}
        kwargs["parameters"] = self._check_parameters(parameters)
        if "version" in kwargs:
            _check_version(kwargs["version"])
        return kwargs

    def parse_json(self, body: bytes) -> dict[str, Any]:
        """`parse` for a raw request body; malformed JSON is `INVALID_JSON` (422)."""
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise BrowserInputError("INVALID_JSON", "The body is not valid JSON.") from None
        return self.parse(data)

    def parse_query(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Keyword arguments from query parameters (GET / `EventSource`).

        `message` is the message; every other key is a parameter name (string
        valued); `version` is honoured only when allowed.
        """
        body: dict[str, Any] = {}
        parameters: dict[str, str] = {}
        for key, value in query.items():
            if key == "message":
                body["message"] = value
            elif key == "version" and self.allow_version:
                body["version"] = int(value) if value.isdigit() else value
            else:
                parameters[key] = value
        if parameters:
            body["parameters"] = parameters
        return self.parse(body)

    def _check_message(self, message: object) -> str:
        if not isinstance(message, str):
            raise BrowserInputError("INVALID_MESSAGE", "The message must be a string.")
        if self.require_message and not message.strip():
            raise BrowserInputError("MISSING_MESSAGE", "A message is required.")
        if len(message) > self.max_message_chars:
            raise BrowserInputError("MESSAGE_TOO_LONG", "The message is too long.")
        return message

    def _check_parameters(self, parameters: object) -> dict[str, Any]:
        if not isinstance(parameters, Mapping):
            raise BrowserInputError("INVALID_PARAMETERS", "parameters must be a JSON object.")
        if self.parameters != "*":
            for name in parameters:
                if name not in self.parameters:
                    raise BrowserInputError(
                        "PARAMETER_NOT_ALLOWED", f"The parameter {name!r} cannot be set."
                    )
        return dict(parameters)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a `Content-Type` is JSON (`application/json` or `application/*+json`).

    Passthrough endpoints accept nothing else: an HTML form cannot send JSON
    cross-site without a CORS preflight, so this keeps forged form posts out.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _check_version(version: object) -> None:
    ok = version in ("production", "draft") or (
        isinstance(version, int) and not isinstance(version, bool) and version >= 0
    )
    if not ok:
        raise BrowserInputError(
            "INVALID_VERSION", "version must be 'production', 'draft' or an int."
        )
