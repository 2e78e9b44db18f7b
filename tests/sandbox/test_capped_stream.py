"""The capture every backend uses: bounded memory, head and tail kept."""

from __future__ import annotations

from sandbox.base import TRUNCATION_MARKER, CappedStream


def test_a_stream_under_the_cap_is_kept_whole() -> None:
    stream = CappedStream(64 * 1024)
    for _ in range(10):
        stream.feed(b"batch 0.5 0.9\n")
    assert not stream.truncated
    assert stream.value() == b"batch 0.5 0.9\n" * 10


def test_a_chatty_stream_keeps_its_head_and_its_last_lines() -> None:
    cap = 1 << 20
    stream = CappedStream(cap)
    stream.feed(b"first line\n")
    for _ in range(300):
        stream.feed(b"x" * 10_000)
    stream.feed(b"\nTest loss: 0.25\nTest accuracy: 0.9\n")
    value = stream.value()
    assert stream.truncated
    assert value.startswith(b"first line\n")
    assert value.endswith(b"Test loss: 0.25\nTest accuracy: 0.9\n")
    assert TRUNCATION_MARKER in value
    assert len(value) == cap + len(TRUNCATION_MARKER)


def test_a_tiny_cap_keeps_only_the_head() -> None:
    stream = CappedStream(100)
    stream.feed(b"a" * 150)
    assert stream.value() == b"a" * 100 + TRUNCATION_MARKER
