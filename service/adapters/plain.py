"""The relay's shorter path for a plain token (issue 18): what a schema declares and what the pipeline hands down.

A relayed token's CPU goes to the Python calls it passes through (tests/bench/PROFILE.md). The general path is one
call per layer: the decoder's `push`, the schema's `events`, a `TokenDelta`, the pipeline's `_take` and its token
clock, the SSE layer's `emit` and chunk template, the socket's `write`. For the commonest read (one whole event
carrying one plain text token, on a stream where nothing needs to see tokens: no stop sequences, no
log-probabilities, no tool reading) the decoder's `push_plain` does it in one function. It reads the token where
its schema declares it (`PlainToken`, data rather than a call) and writes the chunk through what the pipeline and
the SSE layer put in a `PlainOut`. Any object the declaration does not cover takes the general path, which stays
the reference: tests hold the two byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlainToken:
    """Where a schema's stream object carries a plain text token: `obj[item][text]`, a non-empty string. An object
    is not plain when its item sets one of `flags` (a special token) or when it carries one of `ends` that is not
    null (the final object, an error, anything else the schema's `events` reads besides the token)."""

    item: str
    text: str
    flags: tuple[str, ...]
    ends: tuple[str, ...]


@dataclass(slots=True, eq=False, weakref_slot=True)
class PlainOut:
    """Where a decoder writes a plain token straight out, for one stream.

    The SSE layer gives the bytes around the token's JSON string in its chunk (`head`, `tail`), the socket's
    `write` (False: the client is behind, pause) and its list of relayed texts; the pipeline gives its list of
    generated texts and its clock, and reads back `tokens` and `last` (the count and the time of the tokens written
    here). `live` is set by the pipeline once the stream's first token went the general way (the opening chunk, the
    first-token time) and cleared when the stream must stop at its next read (the drain's cut)."""

    head: bytes
    tail: bytes
    write: Callable[[bytes], bool]
    texts: list[str]
    generated: list[str]
    clock: Callable[[], float]
    live: bool = False
    tokens: int = 0
    last: float | None = None
