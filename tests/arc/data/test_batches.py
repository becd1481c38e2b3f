"""Batches prepared in a background thread (prefetch)."""

import threading

import pytest
from lpn_arc.data import prefetch


def test_prefetch_same_sequence_and_errors():
    assert list(prefetch(iter(range(20)), size=3)) == list(range(20))

    def failing():
        yield 1
        yield 2
        raise RuntimeError("producer broke")

    got = []
    with pytest.raises(RuntimeError, match="producer broke"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stops_when_the_consumer_stops():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetch(endless(), size=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.wait(5.0)
