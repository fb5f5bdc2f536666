"""The read-ahead and write-behind threads."""

from __future__ import annotations

import pytest

from spheroseg.inference.store import BackgroundWriter, prefetch


def test_prefetch_raises_the_producers_error():
    def items():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(items()))


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    stream = prefetch(iter(range(1000)), depth=1)
    assert next(stream) == 0
    stream.close()


def test_background_writer_surfaces_a_failed_write():
    writer = BackgroundWriter()
    store: dict[int, int] = {}
    writer.submit(store.__setitem__, 0, 1)

    def fail() -> None:
        raise OSError("no space left")

    writer.submit(fail)
    with pytest.raises(OSError, match="no space left"):
        writer.close()
    assert store == {0: 1}

