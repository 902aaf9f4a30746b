"""Session ids: random UUID4s in canonical form, never repeated, per process."""

from __future__ import annotations

import os
import threading
import uuid

from noukai_core._session_ids import new_session_id


def _assert_uuid4(text: str) -> None:
    parsed = uuid.UUID(text)
    assert str(parsed) == text  # canonical: lowercase, hyphenated, 36 characters
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122


def test_ids_are_canonical_uuid4_and_distinct_across_batches() -> None:
    ids = [new_session_id() for _ in range(3 * 256 + 7)]  # several refills of the pool
    for text in ids:
        _assert_uuid4(text)
    assert len(set(ids)) == len(ids)
    # Random bits really vary: every position that is not fixed takes many digits.
    for column in (0, 9, 15, 20, 35):
        assert len({text[column] for text in ids}) > 8
    assert {text[19] for text in ids} == set("89ab")


def test_threads_drawing_at_once_never_share_an_id() -> None:
    drawn: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(len(drawn))

    def draw(out: list[str]) -> None:
        start.wait()
        out.extend(new_session_id() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [text for out in drawn for text in out]
    assert len(set(everything)) == len(everything) == 16_000


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_session_id()  # the pool now holds unused ids the child would inherit
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        try:
            os.write(write_end, new_session_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    _assert_uuid4(child_id)
    assert child_id != new_session_id()

