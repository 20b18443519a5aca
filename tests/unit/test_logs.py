"""The log writer thread: every record reaches the stream, in order, in batches, and stop() flushes."""

from __future__ import annotations

import io
import logging
import queue

import orjson

from service.telemetry.logs import BatchWriter, JsonFormatter


class CountingStream(io.StringIO):
    writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def _writer(batch_s: float) -> tuple[BatchWriter, queue.SimpleQueue[logging.LogRecord | None], CountingStream]:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    return BatchWriter(records, handler, batch_s=batch_s), records, stream


def _record(i: int) -> logging.LogRecord:
    record = logging.LogRecord("jumpgate.request", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"n": i}
    return record


def test_a_burst_is_written_in_order_in_few_writes_and_stop_flushes() -> None:
    writer, records, stream = _writer(batch_s=0.2)
    writer.start()
    for i in range(500):
        records.put(_record(i))
    writer.stop()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["n"] for line in lines] == list(range(500))
    assert {line["message"] for line in lines} == {"request"}
    assert 1 <= stream.writes <= 3  # one write per batch, not one per record


def test_a_record_that_cannot_be_formatted_does_not_lose_the_others() -> None:
    writer, records, stream = _writer(batch_s=0.0)
    bad = _record(1)
    bad.msg, bad.args = "%d", ("not a number",)
    writer.start()
    for record in (_record(0), bad, _record(2)):
        records.put(record)
    writer.stop()
    writer.stop()  # idempotent
    assert [orjson.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 2]
