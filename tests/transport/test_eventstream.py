"""Event-stream decoding: the AWS shared test vectors, split-anywhere feeding, and SageMaker's frame semantics."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import UpstreamStreamError
from service.transport.eventstream import FrameDecoder, PayloadPartDecoder
from tests.transport.upstream import encode_frame, error_frame, exception_frame, payload_part

VECTORS = Path(__file__).parent.parent / "fixtures" / "eventstream"
POSITIVE = sorted(p.name for p in (VECTORS / "encoded" / "positive").iterdir())
NEGATIVE = sorted(p.name for p in (VECTORS / "encoded" / "negative").iterdir())
PRELUDE_LENGTH = 12


def expected_header(spec: dict[str, object]) -> object:
    # The decoded vectors hold byte-like values base64-encoded; botocore gives str for strings.
    kind, value = spec["type"], spec["value"]
    if kind == 7:
        return base64.b64decode(value).decode()
    if kind in (6, 9):
        return base64.b64decode(value)
    return value


def feed_bytewise(decoder: FrameDecoder | PayloadPartDecoder, data: bytes) -> list:
    out: list = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i:i + 1]))
    return out


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("bytewise", [False, True])
def test_positive_vectors(name: str, bytewise: bool) -> None:
    encoded = (VECTORS / "encoded" / "positive" / name).read_bytes()
    decoded = json.loads((VECTORS / "decoded" / "positive" / name).read_text())
    decoder = FrameDecoder("vectors")
    messages = feed_bytewise(decoder, encoded) if bytewise else decoder.feed(encoded)
    decoder.close()
    assert len(messages) == 1
    message = messages[0]
    assert message.total_length == decoded["total_length"] == len(encoded)
    assert message.headers_length == decoded["headers_length"]
    assert message.prelude_crc == decoded["prelude_crc"] & 0xFFFFFFFF
    assert message.message_crc == decoded["message_crc"] & 0xFFFFFFFF
    assert message.headers == {h["name"]: expected_header(h) for h in decoded["headers"]}
    assert message.payload == base64.b64decode(decoded["payload"])


@pytest.mark.parametrize("name", POSITIVE)
def test_frames_without_message_type_yield_no_payload_parts(name: str) -> None:
    decoder = PayloadPartDecoder("vectors")
    assert decoder.feed((VECTORS / "encoded" / "positive" / name).read_bytes()) == []
    decoder.close()


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_vectors(name: str) -> None:
    encoded = (VECTORS / "encoded" / "negative" / name).read_bytes()
    expected = (VECTORS / "decoded" / "negative" / name).read_text().strip()
    decoder = FrameDecoder("vectors")
    if expected == "Prelude checksum mismatch":
        # Caught as soon as the prelude is in, before the rest of the frame arrives.
        with pytest.raises(UpstreamStreamError, match="Checksum mismatch"):
            decoder.feed(encoded[:PRELUDE_LENGTH])
    else:
        assert expected == "Message checksum mismatch"
        assert decoder.feed(encoded[:-1]) == []
        with pytest.raises(UpstreamStreamError, match="Checksum mismatch"):
            decoder.feed(encoded[-1:])
    # A corrupt stream stays failed: no later frame boundary can be trusted.
    with pytest.raises(UpstreamStreamError):
        decoder.feed(payload_part(b"later"))


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_vectors_through_payload_decoder(name: str) -> None:
    with pytest.raises(UpstreamStreamError, match="malformed event stream"):
        PayloadPartDecoder("ep").feed((VECTORS / "encoded" / "negative" / name).read_bytes())


PARTS = [b'data: {"token": {"text": "a"}}\n\n', b"data: {\"tok", "€".encode()[:2], "€".encode()[2:] + b"\n", b"x"]
STREAM = b"".join(payload_part(p) for p in PARTS)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_any_split_yields_the_same_parts(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    decoder = PayloadPartDecoder("ep")
    got: list[bytes] = []
    for start, end in pairwise(bounds):
        got.extend(decoder.feed(STREAM[start:end]))
    decoder.close()
    assert got == PARTS


def test_other_events_and_empty_parts_are_skipped() -> None:
    other = encode_frame({":message-type": "event", ":event-type": "SomethingNew"}, b"ignored")
    assert PayloadPartDecoder("ep").feed(other + payload_part(b"") + payload_part(b"kept")) == [b"kept"]


def test_exception_after_parts_in_the_same_chunk_loses_no_output() -> None:
    decoder = PayloadPartDecoder("ep")
    chunk = payload_part(b"one") + exception_frame("ModelStreamError", {"Message": "m", "ErrorCode": "StreamBroken"})
    assert decoder.feed(chunk) == [b"one"]
    with pytest.raises(UpstreamStreamError, match=r"ModelStreamError \(StreamBroken\): m"):
        decoder.close()
    with pytest.raises(UpstreamStreamError):
        decoder.feed(payload_part(b"more"))


def test_corrupt_frame_after_good_ones_in_the_same_chunk() -> None:
    bad = bytearray(payload_part(b"bad"))
    bad[-5] ^= 1
    decoder = PayloadPartDecoder("ep")
    assert decoder.feed(payload_part(b"good") + bytes(bad)) == [b"good"]
    with pytest.raises(UpstreamStreamError, match="Checksum mismatch"):
        decoder.close()


@pytest.mark.parametrize(("frame", "retryable", "needle"), [
    (exception_frame("ModelStreamError", {"Message": "took too long", "ErrorCode": "ModelInvocationTimeExceeded"}),
     False, "ModelStreamError (ModelInvocationTimeExceeded): took too long"),
    (exception_frame("InternalStreamFailure", {"Message": "Try your request again"}), True, "InternalStreamFailure"),
    (exception_frame("SomethingElse", {}), False, "SomethingElse"),
    (error_frame("ServiceError", "account 123456789012 broke"), False, "ServiceError: account <account> broke"),
])
def test_exception_and_error_frames(frame: bytes, retryable: bool, needle: str) -> None:
    with pytest.raises(UpstreamStreamError) as info:
        PayloadPartDecoder("my-endpoint").feed(frame)
    assert info.value.retryable is retryable
    assert needle in info.value.message
    assert "'my-endpoint'" in info.value.message


def test_truncated_stream_is_reported_on_close() -> None:
    decoder = PayloadPartDecoder("ep")
    assert decoder.feed(payload_part(b"abc")[:-3]) == []
    with pytest.raises(UpstreamStreamError, match="ended inside a frame") as info:
        decoder.close()
    assert info.value.retryable


def test_remembered_header_blocks_never_mix_frames_up() -> None:
    """Header parsing is memoized per distinct header block: PayloadParts, another event type and an
    exception interleaved decode exactly as botocore decodes them one by one, in any number of streams; the
    shared header mappings are read-only."""
    from botocore.eventstream import EventStreamBuffer

    other_event = encode_frame({":message-type": "event", ":event-type": "SomethingNew",
                                ":content-type": "application/octet-stream"}, b"ignored")
    wire = (payload_part(b"one") + other_event + payload_part(b"two") + other_event + payload_part(b"three")
            + exception_frame("ModelStreamError", {"Message": "boom", "ErrorCode": "500"}))
    plain = EventStreamBuffer()
    plain.add_data(wire)
    expected = [(m.headers, m.payload) for m in plain]
    for _ in range(3):
        frames = FrameDecoder("ep").feed(wire)
        assert [(dict(m.headers), m.payload) for m in frames] == expected
        assert frames[0].headers is frames[2].headers  # one parse for one header block
        with pytest.raises(TypeError):
            frames[0].headers[":event-type"] = "mutated"  # type: ignore[index]
    decoder = PayloadPartDecoder("ep")
    assert decoder.feed(wire) == [b"one", b"two", b"three"]
    with pytest.raises(UpstreamStreamError, match="ModelStreamError"):
        decoder.close()


def framed(headers: bytes, payload: bytes, *, total: int | None = None, headers_length: int | None = None) -> bytes:
    """A frame with right CRCs around whatever lengths it claims (the lengths are what is under test)."""
    total = len(headers) + len(payload) + 16 if total is None else total
    prelude = struct.pack(">II", total, len(headers) if headers_length is None else headers_length)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize(("frame", "needle"), [
    (framed(b"", b"x" * 8, headers_length=200_000), "a header block of 200000 bytes"),
    (framed(b"\x00" * 8, b"", headers_length=40), "with a header block of 40 bytes"),
    (framed(b"\x05:nope\x63", b"payload"), "unreadable header block"),
])
def test_frames_whose_lengths_or_headers_cannot_be_read_fail_the_stream(frame: bytes, needle: str) -> None:
    decoder = FrameDecoder("ep")
    with pytest.raises(UpstreamStreamError, match=needle):
        decoder.feed(frame)
    with pytest.raises(UpstreamStreamError):
        decoder.feed(payload_part(b"later"))  # no later boundary is trusted


def _corrupted(frame: bytes, at: int) -> bytes:
    flipped = bytearray(frame)
    flipped[at % len(frame)] ^= 0x20
    return bytes(flipped)


_FRAME_KINDS = st.one_of(
    st.binary(max_size=40).map(payload_part),
    st.binary(max_size=8).map(lambda data: encode_frame(
        {":message-type": "event", ":event-type": "PayloadPart", ":content-type": "application/json"}, data)),
    st.just(encode_frame({":message-type": "event", ":event-type": "SomethingNew"}, b"ignored")),
    st.sampled_from([exception_frame("ModelStreamError", {"Message": "m", "ErrorCode": "E"}),
                     exception_frame("InternalStreamFailure", {"Message": "again"}), error_frame("Boom", "b")]),
    st.tuples(st.binary(min_size=1, max_size=8).map(payload_part), st.integers(0, 200)).map(lambda c: _corrupted(*c)),
)


def _outcome(step: Callable[..., object], *args: object) -> object:
    try:
        return step(*args)
    except UpstreamStreamError as exc:
        return ("raised", exc.message, exc.retryable)


@given(st.lists(_FRAME_KINDS, max_size=6), st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       st.booleans())
def test_pushed_reads_decode_exactly_as_feed_does(kinds: list[bytes], cuts: list[int], cut_tail: bool) -> None:
    """`push` (the relay's read: a shorter path for whole PayloadPart frames) hands over, read by read, what joining
    `feed`'s parts gives (nothing when a read completes no part), answers what the receiver answers, and raises what
    `feed` raises, for any mix of frames, corruption and splits."""
    wire = b"".join(kinds)
    if cut_tail and wire:
        wire = wire[:-1]
    bounds = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    fast, reference = PayloadPartDecoder("ep"), PayloadPartDecoder("ep")

    def pushed(chunk: bytes) -> tuple[list[bytes], bool]:
        got: list[bytes] = []

        def on_parts(part: bytes) -> bool:
            got.append(part)
            return len(part) % 2 == 0  # the receiver's answer (pause or go on) comes back as push's own

        return got, fast.push(on_parts, chunk)

    def expected(chunk: bytes) -> tuple[list[bytes], bool]:
        part = b"".join(reference.feed(chunk))
        return ([part], len(part) % 2 == 0) if part else ([], True)

    for start, end in pairwise(bounds):
        chunk = wire[start:end]
        assert _outcome(pushed, chunk) == _outcome(expected, chunk)
    assert _outcome(fast.close) == _outcome(reference.close)


def test_joined_takes_whole_frames_of_a_known_block_without_the_frame_decoder() -> None:
    decoder = PayloadPartDecoder("ep")
    assert decoder.joined(payload_part(b"first")) == b"first"  # learns the stream's PayloadPart header block
    frames = FrameDecoder("ep")
    fed: list[bytes] = []
    frames.feed = lambda chunk: fed.append(chunk) or []  # type: ignore[method-assign]
    decoder._frames = frames
    assert decoder.joined(payload_part(b"a") + payload_part(b"") + payload_part(b"b")) == b"ab"
    assert not fed, "the usual read needs no Frame objects"
    assert decoder.joined(payload_part(b"c")[:-1]) == b"" and fed, "a partial frame goes to the frame decoder"
