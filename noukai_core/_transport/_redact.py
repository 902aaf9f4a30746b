"""Keep the client's own API key out of everything built from a response.

A misbehaving server or proxy may echo the `Authorization` header back: in
an error body, in a header (`X-Request-ID`, `WWW-Authenticate`), or inside a
streamed frame. Whatever the transport hands on (a `RawResponse`, a stream's
chunks, a request id) passes through here first, so no exception message,
`response_body`, event, repr or log event can carry the key (issue 5 item 10).

Pure: no I/O. Both transports use the same `Redactor`.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "nk_***"


class Redactor:
    """Replaces one secret with `MASK` in bodies, headers and chunked streams."""

    def __init__(self, secret: str) -> None:
        self._text = secret
        self._bytes = secret.encode()
        self._mask_bytes = MASK.encode()

    def __repr__(self) -> str:
        return "Redactor()"

    def content(self, value: bytes) -> bytes:
        return value.replace(self._bytes, self._mask_bytes) if self._bytes in value else value

    def headers(self, items: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Lower-case names (what the protocol code reads), values redacted."""
        secret = self._text
        return {
            name.lower(): (value.replace(secret, MASK) if secret in value else value)
            for name, value in items
        }

    def chunks(self) -> ChunkRedactor:
        return ChunkRedactor(self._bytes, self._mask_bytes)


class ChunkRedactor:
    """Redacts one byte stream whose chunks may split the secret anywhere.

    Invariant: a chunk's tail is held back only while it is a proper prefix
    of the secret (it might be completed by the next chunk), so it is never
    longer than the secret and a chunk ending a frame (a blank line) is
    passed on whole at once: holding it would delay the event.

    Cost: `feed` runs once per HTTP chunk, and a server sends one chunk per
    event, so its common case is kept to two memchr-backed checks. A tail can
    only be a proper prefix of the secret if its last byte is one of the
    bytes of `secret[:-1]`; no chunk ending in a line end (no API key holds
    one) is ever searched for a held tail.
    """

    def __init__(self, secret: bytes, mask: bytes) -> None:
        self._secret = secret
        self._mask = mask
        self._first = secret[:1]
        self._prefix_ends = frozenset(secret[:-1])
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        if self._held:
            chunk = self._held + chunk
            self._held = b""
        if self._secret in chunk:
            chunk = chunk.replace(self._secret, self._mask)
        if chunk and chunk[-1] in self._prefix_ends:
            keep = self._prefix_tail(chunk)
            if keep:
                self._held = chunk[-keep:]
                return chunk[:-keep]
        return chunk

    def flush(self) -> bytes:
        """The bytes still held at the end of the stream (a partial key is not the key)."""
        held, self._held = self._held, b""
        return held

    def _prefix_tail(self, data: bytes) -> int:
        """Length of the longest suffix of `data` that is a proper prefix of the secret."""
        size = len(data)
        pos = data.find(self._first, max(0, size - len(self._secret) + 1))
        while pos != -1:
            if self._secret.startswith(data[pos:]):
                return size - pos
            pos = data.find(self._first, pos + 1)
        return 0
