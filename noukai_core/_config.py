"""Client configuration and flow addressing, resolved without I/O.

Precedence (issue 5 item 15): explicit arguments beat environment variables,
`base_url=` > `env=` > `NOUKAI_BASE_URL` > `NOUKAI_ENV` > production.
Path segments are validated before they go into a URL, so a slug like `..`
or `a/b` can never address a different route.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noukai_core._constants import (
    API_KEY_ENV_VAR,
    API_KEY_PREFIX,
    BASE_URL_ENV_VAR,
    ENV_BASE_URLS,
    ENV_ENV_VAR,
    PRODUCTION_BASE_URL,
)
from noukai_core._errors import AuthenticationError

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a header value can carry

Version = str | int
FlowIdentifier = str | Mapping[str, str]


def validate_segment(kind: str, value: object) -> str:
    """Return `value` if it is a safe URL path segment, else raise ValueError."""
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid {kind} {value!r}: expected [A-Za-z0-9._-]+ (not '.' or '..')")
    return value


def check_timeout(timeout: float) -> float:
    """A timeout in seconds (issue 5 item 15): a positive number.

    Checked when the method is called, so a bad value is a clear `ValueError`
    at the caller's line rather than an error from deep inside httpx.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


def check_call_timeout(timeout: float | None) -> float | None:
    """A per-call `timeout=`: None (the client's default) or a valid timeout."""
    return None if timeout is None else check_timeout(timeout)


def resolve_api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV_VAR)
    if not key:
        raise AuthenticationError(
            f"no API key: pass api_key= or set {API_KEY_ENV_VAR}", code="MISSING_API_KEY"
        )
    if not key.startswith(API_KEY_PREFIX):
        # Never echo the value: it may be a real secret pasted in the wrong place.
        raise AuthenticationError(
            f"invalid API key: Noukai keys start with {API_KEY_PREFIX!r}", code="INVALID_API_KEY"
        )
    if not _KEY_CHARACTERS.fullmatch(key):
        # A key with a stray newline or a non-ASCII character cannot go into a
        # header: httpx would fail later with a misleading connection error, or
        # with an encoding error whose repr carries the whole key.
        raise AuthenticationError(
            "invalid API key: it contains whitespace or non-ASCII characters "
            "(a trailing newline from a file or an environment variable?)",
            code="INVALID_API_KEY",
        )
    return key


def _env_url(env: str, source: str) -> str:
    try:
        return ENV_BASE_URLS[env.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown {source} {env!r}: expected one of {sorted(ENV_BASE_URLS)}"
        ) from None


def resolve_base_url(base_url: str | None, env: str | None) -> str:
    if base_url:
        url = base_url
    elif env:
        url = _env_url(env, "env")
    elif os.environ.get(BASE_URL_ENV_VAR):
        url = os.environ[BASE_URL_ENV_VAR]
    elif os.environ.get(ENV_ENV_VAR):
        url = _env_url(os.environ[ENV_ENV_VAR], ENV_ENV_VAR)
    else:
        url = PRODUCTION_BASE_URL
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def resolve_defaults(org: str | None, project: str | None) -> tuple[str | None, str | None]:
    if (org is None) != (project is None):
        raise ValueError("org and project must be given together, or not at all")
    if org is not None and project is not None:
        return validate_segment("org", org), validate_segment("project", project)
    return None, None


@dataclass(frozen=True)
class FlowTarget:
    """A fully-qualified flow: org, project and slug, each a validated segment."""

    org: str
    project: str
    slug: str

    @property
    def base_path(self) -> str:
        return f"/seq/{self.org}/{self.project}/{self.slug}"

    def __str__(self) -> str:
        return f"{self.org}/{self.project}/{self.slug}"


def resolve_flow(
    identifier: FlowIdentifier | None,
    *,
    org: str | None,
    project: str | None,
    slug: str | None,
    default_org: str | None,
    default_project: str | None,
) -> FlowTarget:
    """Turn any identifier form of the reference into a `FlowTarget`.

    Forms: "slug" (needs client defaults), "org/project/slug", a dict with
    org/project/slug keys, or keyword arguments. Explicit parts win over the
    client's defaults; an identifier that names its org or project cannot be
    combined with `org=` / `project=` (ValueError, not a silent override).
    """
    if identifier is not None and slug is not None:
        raise ValueError("pass a flow identifier or slug=, not both")
    parts: dict[str, Any] = {}
    if isinstance(identifier, str):
        pieces = identifier.split("/")
        if len(pieces) == 3:
            parts = dict(zip(("org", "project", "slug"), pieces, strict=False))
        elif len(pieces) == 1:
            parts = {"slug": pieces[0]}
        else:
            raise ValueError(f"flow identifier {identifier!r} must be 'slug' or 'org/project/slug'")
    elif isinstance(identifier, Mapping):
        unknown = set(identifier) - {"org", "project", "slug"}
        if unknown:
            raise ValueError(f"unknown flow identifier keys: {sorted(unknown)}")
        parts = dict(identifier)
    elif identifier is not None:
        raise TypeError(f"flow identifier must be a str or dict, not {type(identifier).__name__}")
    if ("org" in parts or "project" in parts) and (org is not None or project is not None):
        # Which org would win is a guess either way: refuse rather than pick one.
        raise ValueError(
            f"flow identifier {identifier!r} already names its org/project: "
            "do not pass org= or project= too"
        )
    if slug is not None:
        parts["slug"] = slug
    if org is not None:
        parts["org"] = org
    if project is not None:
        parts["project"] = project
    if "slug" not in parts:
        raise ValueError("a flow slug is required")
    if "org" not in parts and "project" not in parts:
        if default_org is None or default_project is None:
            raise ValueError(
                f"short flow slug {parts['slug']!r} needs client defaults: "
                "construct the client with org= and project=, or use 'org/project/slug'"
            )
        parts["org"], parts["project"] = default_org, default_project
    elif "org" not in parts or "project" not in parts:
        raise ValueError("org and project must be given together")
    return FlowTarget(
        validate_segment("org", parts["org"]),
        validate_segment("project", parts["project"]),
        validate_segment("slug", parts["slug"]),
    )


def version_segment(version: Version, *, streaming: bool = False) -> str:
    """The path segment for `version` (contract §2): "" for production.

    "production" (default): the base path. "draft" or 0: "/v0". N >= 1: "/vN".
    Streams refuse draft, because the server rejects `/v0/step`.
    """
    if isinstance(version, bool):
        raise ValueError(f"invalid version {version!r}")
    if version == "production":
        return ""
    if version == "draft" or version == 0:
        if streaming:
            raise ValueError(
                "steps() and events() cannot run the draft version (the server rejects "
                "/v0/step); use version='production' or a published version number"
            )
        return "/v0"
    if isinstance(version, int) and version > 0:
        return f"/v{version}"
    raise ValueError(
        f"invalid version {version!r}: expected 'production', 'draft' or a positive int"
    )
