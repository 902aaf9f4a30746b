"""Random session ids (UUID4, canonical text form), made in batches.

A capture scope opens on every request an integration serves, and making
its id was most of its cost: `str(uuid.uuid4())` runs about 21,000 CPU
instructions, and slicing hex digits into an f-string still about 10,000.
Ids are therefore made 256 at a time from one read of the OS's CSPRNG, with
C-level byte operations only, and handed out one by one (about 2,800
instructions each, `popleft` included).

Invariants:

- every id is a version-4, RFC 4122 variant UUID built from `os.urandom`
  bytes, in exactly the form `str(uuid.uuid4())` has; none is handed out twice;
- the pool is a `deque`, whose `popleft` is atomic, so threads share it
  without a lock (two threads refilling at once only make more ids);
- a forked child empties the pool it inherited (`os.register_at_fork`), so a
  pre-forking server's workers never hand out their parent's ids.
"""

from __future__ import annotations

import os
from collections import deque

_BATCH = 256
_TEXT = b"00000000-0000-0000-0000-000000000000 "  # one id's text and a separator
# Byte maps that force the UUID's fixed bits: the version nibble of byte 6,
# and the two variant bits of byte 8 (10xx, so the digit is one of 8 9 a b).
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_RFC_4122 = bytes((b & 0x3F) | 0x80 for b in range(256))
# Hex digit d of an id lands in column d + (the hyphens before it) of its text.
_COLUMNS = [(d, d + (d >= 8) + (d >= 12) + (d >= 16) + (d >= 20)) for d in range(32)]

_pool: deque[str] = deque()


def _fill() -> None:
    raw = bytearray(os.urandom(16 * _BATCH))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_RFC_4122)
    digits = raw.hex().encode("ascii")
    text = bytearray(_TEXT * _BATCH)
    # One strided copy per digit position moves that digit of every id at once.
    for digit, column in _COLUMNS:
        text[column :: len(_TEXT)] = digits[digit::32]
    _pool.extend(text.decode("ascii").split())


def new_session_id() -> str:
    """A fresh random UUID4 in canonical form (thread-safe, fork-safe)."""
    while True:
        try:
            return _pool.popleft()
        except IndexError:
            _fill()


if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere there is no fork
    os.register_at_fork(after_in_child=_pool.clear)
