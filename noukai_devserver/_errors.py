"""The one error type routes raise, and the contract's envelope for it.

Invariant: every error that leaves the server is `{"detail": {"code", "message"}}`
with a non-2xx status (contract §1.5). Routes raise `ApiError`; the exception
handlers installed in `_app` turn it (and FastAPI's own 404/405/422) into that
envelope, and the outermost middleware turns anything unexpected into a 500
`INTERNAL_ERROR` without a traceback.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error with a contract code; `extra` adds keys inside `detail`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON body: the envelope, with any extra keys inside `detail`."""
        return {"detail": {**self.extra, "code": self.code, "message": self.message}}


def unauthenticated(reason: str) -> ApiError:
    """401 with the `WWW-Authenticate` header the SDK stores verbatim."""
    header = f'Bearer error="invalid_token", error_description="{reason}"'
    return ApiError(401, "UNAUTHENTICATED", reason, headers={"WWW-Authenticate": header})


def validation_error(field: str, message: str) -> ApiError:
    """422 for a body whose JSON is well-formed but whose types are wrong."""
    return ApiError(422, "VALIDATION_ERROR", f"{field}: {message}", extra={"field": field})
