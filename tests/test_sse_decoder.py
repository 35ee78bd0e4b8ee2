"""The SSE decoder under hostile input (hypothesis): any bytes, any chunking.

Whatever an upstream sends, the decoder yields the same events however the bytes are cut,
never raises anything but the gateway's own error for an event past the size limit, and
never holds more than that limit.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkey_mw.errors import UpstreamBadResponse
from portkey_mw.streaming import SSEDecoder

FAST = settings(max_examples=300, deadline=None, derandomize=True)
#: bytes that matter to the framing, with some ordinary ones
SSE_BYTES = st.lists(
    st.sampled_from([b"\n", b"\r", b"\r\n", b"data: ", b"x", b"{}", b":", b" ", b"\x00", b"\xff"]),
    max_size=60,
).map(b"".join)


def decode(stream: bytes, cuts: list[int], limit: int = 1 << 20) -> list[bytes]:
    decoder = SSEDecoder(max_event_bytes=limit)
    events: list[bytes] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += decoder.feed(stream[start:cut])
        start = cut
    events += decoder.feed(stream[start:])
    return events + decoder.flush()


@FAST
@given(stream=st.one_of(SSE_BYTES, st.binary(max_size=300)), data=st.data())
def test_events_do_not_depend_on_how_the_bytes_are_cut(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    assert decode(stream, cuts) == decode(stream, [])


@FAST
@given(stream=st.binary(max_size=2000), data=st.data())
def test_only_the_size_limit_can_stop_it(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    try:
        events = decode(stream, cuts, limit=64)
    except UpstreamBadResponse as error:
        assert error.code == "upstream_event_too_large"
        return
    assert all(len(event) <= 64 for event in events)


def test_an_endless_event_is_refused_without_buffering_it_all() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    decoder.feed(b"data: ")
    with pytest.raises(UpstreamBadResponse, match="larger than 1024 bytes"):
        for _ in range(1000):
            decoder.feed(b"x" * 100)


def test_a_large_event_in_small_chunks_is_linear() -> None:
    """Pieces of an unfinished event are joined once, not on every chunk."""
    decoder = SSEDecoder()
    decoder.feed(b"data: ")
    for _ in range(4096):
        assert decoder.feed(b"y" * 1024) == []
    (event,) = decoder.feed(b"\n\n")
    assert len(event) == 6 + 4096 * 1024
