"""Token log-probabilities in the pipeline: which endpoints can answer a request that wants them (routing drops
the others, as for unsupported parameters), and keeping the entries in step with the text the gateway returns
(cut at a stop sequence, alternatives trimmed to what was asked for, released with the streamed text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from service.adapters.logprobs import TokenData
from service.adapters.params import Policy, Subject, WireParams
from service.canonical import GenerationRequest, TokenDelta, TokenLogprob
from service.errors import InvalidParam, UnsupportedParam
from service.pipeline.stops import StopScanner


def check_endpoint(req: GenerationRequest, data: TokenData | None, subject: Subject, policy: Policy,
                   wire: WireParams, *, streamed: bool) -> WireParams:
    """The wire parameters for an endpoint that can honour the request's logprobs; raises the 400 that says why
    it cannot (routing then tries the model's other endpoints). `drop` serves it without them, and says so.
    `streamed`: the endpoint's answer will really be streamed (not invoked and re-emitted)."""
    if not req.logprobs:
        return wire
    where = f"endpoint '{subject.endpoint}' (schema {subject.schema}) of model '{subject.model}'"
    name = "top_logprobs" if req.api == "chat" else "logprobs"
    if data is None:
        if policy == "drop":
            return replace(wire, dropped=(*wire.dropped, "logprobs"))
        raise UnsupportedParam(f"{where} returns no token log-probabilities: remove `logprobs`, or set "
                               "`unsupported_params: drop` on the model to have it dropped", param="logprobs")
    if req.top_logprobs > data.max_top:
        raise InvalidParam(f"`{name}` is at most {data.max_top} on {where} (the container's cap); got "
                           f"{req.top_logprobs}: ask for fewer alternatives", param=name)
    if streamed and req.top_logprobs and not data.stream_top:
        raise UnsupportedParam(f"{where} sends token alternatives only at the end of a stream: send stream false, "
                               f"or `{name}` 0", param=name)
    return wire


def trimmed(entries: tuple[TokenLogprob, ...] | None, top: int) -> tuple[TokenLogprob, ...] | None:
    """Alternatives cut to what the request asked for (LMI's chat returns one whatever was asked)."""
    if entries is None or all(len(e.top) <= top for e in entries):
        return entries
    return tuple(replace(e, top=e.top[:top]) for e in entries)


def cut_to(entries: tuple[TokenLogprob, ...] | None, length: int) -> tuple[TokenLogprob, ...] | None:
    """The entries whose text lies within the first `length` characters (the answer was cut at a stop)."""
    if entries is None:
        return None
    kept, end = [], 0
    for entry in entries:
        end += len(entry.token)
        if end > length:
            break
        kept.append(entry)
    return tuple(kept)


class Release:
    """Stream side: entries wait until the text they came from is released to the client (a stop scanner may
    hold text back), so a delta carries exactly the tokens of its text and none past a stop."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, TokenLogprob]] = []  # (end offset in the upstream text, entry)
        self._received = 0
        self._released = 0

    def add(self, text: str, entries: Sequence[TokenLogprob]) -> None:
        """An upstream delta's text and entries; the entries share the delta's end offset."""
        self._received += len(text)
        self._pending.extend((self._received, e) for e in entries)

    def take(self, released: int) -> tuple[TokenLogprob, ...]:
        """Entries of text now released (`released` more characters went to the client)."""
        self._released += released
        ready = [e for end, e in self._pending if end <= self._released]
        if ready:
            self._pending = [(end, e) for end, e in self._pending if end > self._released]
        return tuple(ready)

    def rest(self) -> tuple[TokenLogprob, ...]:
        """The stream ended without a stop: everything still waiting."""
        rest, self._pending = tuple(e for _, e in self._pending), []
        return rest


class DeltaRelay:
    """What a client gets of each upstream delta: text that may begin a gateway-side stop sequence held back
    until decided (`StopScanner`), and, when asked for (`top` alternatives), the log-probabilities of exactly
    the tokens of the text released."""

    def __init__(self, stops: Sequence[str], top: int | None) -> None:
        self.scanner = StopScanner(stops)
        self.top = top or 0
        self.release = Release() if top is not None else None
        #: every delta passes as it came: nothing to hold back or trim
        self.passthrough = self.release is None and not self.scanner.stops

    @property
    def stopped(self) -> bool:
        return self.scanner.stopped

    def push(self, event: TokenDelta) -> TokenDelta | None:
        if self.passthrough:
            return event  # nothing to hold back or trim: the delta as it came (the usual case, once per token)
        safe = self.scanner.push(event.text)
        if self.release is not None:
            self.release.add(event.text, trimmed(event.logprobs, self.top) or ())
        if not safe:
            return None
        return TokenDelta(safe, event.index, self.release.take(len(safe)) if self.release else ())

    def flush(self) -> TokenDelta | None:
        """The upstream ended: what was held back (up to a stop it may hold), with the entries still owed."""
        tail = self.scanner.flush()
        entries = self.release.take(len(tail)) if self.release else ()
        if self.release is not None and not self.scanner.stopped:
            entries += self.release.rest()
        return TokenDelta(tail, logprobs=entries) if tail or entries else None
