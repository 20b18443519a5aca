"""The frame encoder against AWS's shared event-stream test vectors and botocore's decoder."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from botocore.eventstream import EventStreamBuffer

from service.simulator import eventstream as es

VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "eventstream"
POSITIVE = sorted(p.name for p in (VECTORS / "encoded" / "positive").iterdir())


def _header(spec: dict[str, object]) -> es.Header:
    kind, value = int(spec["type"]), spec["value"]  # type: ignore[call-overload]
    if kind in (es.STRING, es.BYTES, es.UUID):
        value = base64.b64decode(str(value))
    return es.Header(str(spec["name"]), kind, value)


def test_all_five_vectors_are_present() -> None:
    assert POSITIVE == ["all_headers", "empty_message", "int32_header", "payload_no_headers", "payload_one_str_header"]


@pytest.mark.parametrize("name", POSITIVE)
def test_encoder_reproduces_aws_vector_byte_for_byte(name: str) -> None:
    decoded = json.loads((VECTORS / "decoded" / "positive" / name).read_text())
    headers = es.encode_headers(_header(h) for h in decoded["headers"])
    frame = es.encode_message(headers, base64.b64decode(decoded["payload"]))
    assert frame == (VECTORS / "encoded" / "positive" / name).read_bytes()
    assert len(frame) == decoded["total_length"] and len(headers) == decoded["headers_length"]


def _decode(raw: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return list(buffer)


def test_payload_part_decodes_with_botocore_including_split_utf8() -> None:
    data = "data:{\"text\":\" 日本".encode()[:-1]  # ends inside a 3-byte character
    [msg] = _decode(es.payload_part(data))
    assert msg.headers == {":message-type": "event", ":event-type": "PayloadPart",
                           ":content-type": "application/octet-stream"}
    assert msg.payload == data
    assert msg.to_response_dict()["status_code"] == 200


def test_exception_frame_is_a_400_for_botocore() -> None:
    [msg] = _decode(es.exception_frame("ModelStreamError", b'{"Message":"m","ErrorCode":"StreamBroken"}'))
    assert msg.headers[":message-type"] == "exception"
    assert msg.headers[":exception-type"] == "ModelStreamError"
    assert msg.to_response_dict()["status_code"] == 400


def test_frames_fed_byte_by_byte_decode_in_order() -> None:
    raw = b"".join(es.payload_part(f"line {i}\n".encode()) for i in range(3))
    buffer = EventStreamBuffer()
    got = []
    for i in range(len(raw)):
        buffer.add_data(raw[i:i + 1])
        got += [m.payload for m in buffer]
    assert got == [b"line 0\n", b"line 1\n", b"line 2\n"]
