"""Deterministic fake text generation shared by every container behaviour.

Rules (tests and the gateway's tests rely on them):
- Prompt tokens: ``count_tokens(text)`` = number of matches of ``\\w+|[^\\w\\s]`` plus 1 for BOS.
- Output: tokens drawn from ``VOCAB`` by ``random.Random`` seeded with ``(seed, variant, prompt)``. Greedy
  decoding uses seed 0, so the same prompt always gives the same text; sampling uses the request's seed (or
  a random one). Every token's text is ``" " + word``.
- Natural length: 8-48 tokens from the same PRNG. If ``max_new_tokens`` is not larger, generation stops on
  ``length``; otherwise the natural tokens are followed by a special EOS token (finish ``eos_token``).
- Stops: with stop strings, the first one is emitted verbatim as the token at position ``STOP_POSITION``
  (0-based) so stop handling is observable; a stop appearing naturally in the text also stops. Finish is
  ``stop_sequence``; the stop text stays in ``Generation.text`` and ``stop_index`` says where it begins
  (containers that hide stops cut there).
Nothing here depends on streaming, so streamed and non-streamed answers carry the same text.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

# Plain English plus multi-byte words (accented Latin 2 bytes, Greek/Cyrillic/Arabic/Armenian 2 bytes,
# CJK 3 bytes, emoji 4 bytes), so byte-level splits of the stream land inside UTF-8 characters.
VOCAB: tuple[str, ...] = (
    "the", "quick", "model", "answer", "river", "light", "garden", "signal", "token", "cloud",
    "stone", "music", "window", "bridge", "forest", "ocean", "simple", "bright", "gateway", "endpoint",
    "café", "naïve", "Zürich", "mañana", "façade", "Ελλάδα", "Привет", "مرحبا", "سلام", "Բարեւ",
    "Հայաստան", "日本語", "東京", "你好", "世界", "😀", "🚀", "🌍",
)
FIRST_WORD_ID = 1000
BOS_ID, EOS_ID, STOP_ID = 1, 2, 999
BOS_TEXT, EOS_TEXT = "<s>", "</s>"
MIN_TOKENS, MAX_TOKENS = 8, 48
STOP_POSITION = 3

_PIECE = re.compile(r"\w+|[^\w\s]")
_SPACED = tuple(" " + word for word in VOCAB)


def count_tokens(text: str) -> int:
    """Prompt token count used by every simulated container (BOS included)."""
    return len(_PIECE.findall(text)) + 1


def prompt_pieces(text: str) -> list[str]:
    """The prompt as tokens (BOS first), for ``prefill`` details."""
    return [BOS_TEXT, *_PIECE.findall(text)]


def piece_id(piece: str) -> int:
    """A stable fake vocabulary id for a prompt piece (ids 3..31999 like a Llama vocabulary)."""
    return 3 + zlib.crc32(piece.encode()) % 31997


@dataclass(frozen=True, slots=True)
class Tok:
    id: int
    text: str
    logprob: float
    special: bool = False


@dataclass(frozen=True, slots=True)
class Generation:
    tokens: tuple[Tok, ...]
    finish: str  # "length" | "eos_token" | "stop_sequence"
    stop_index: int | None = None  # where the matched stop starts in ``text``

    @property
    def text(self) -> str:
        """Decoded text; special tokens (EOS) decode to nothing, as with skip_special_tokens."""
        return "".join(t.text for t in self.tokens if not t.special)

    @property
    def text_without_stop(self) -> str:
        return self.text if self.stop_index is None else self.text[: self.stop_index]


def generate(prompt: str, *, seed: int, max_new_tokens: int, stop: Sequence[str] = (), variant: int = 0) -> Generation:
    """Generate deterministically; ``variant`` separates sequences of one request (n > 1, beams)."""
    rng = random.Random(f"{seed}|{variant}|{prompt}")
    natural = rng.randint(MIN_TOKENS, MAX_TOKENS)
    stops = [s for s in stop if s]
    if not stops:
        return _without_stops(rng, natural, max_new_tokens)
    tokens: list[Tok] = []
    text = ""
    for position in range(min(natural, max_new_tokens)):
        if stops and position == STOP_POSITION:
            tok = Tok(STOP_ID, stops[0], -0.01)
        else:
            index = rng.randrange(len(VOCAB))
            tok = Tok(FIRST_WORD_ID + index, " " + VOCAB[index], -round(rng.random() * 3, 4))
        tokens.append(tok)
        text += tok.text
        hit = _find_stop(text, stops, len(text) - len(tok.text))
        if hit is not None:
            return Generation(tuple(tokens), "stop_sequence", hit)
    if max_new_tokens <= natural:
        return Generation(tuple(tokens), "length")
    tokens.append(Tok(EOS_ID, EOS_TEXT, -round(rng.random(), 4), special=True))
    return Generation(tuple(tokens), "eos_token")


def _without_stops(rng: random.Random, natural: int, max_new_tokens: int) -> Generation:
    """`generate` when no stop can match: the same draws in the same order, without the text scan (the
    simulator answers every benchmark request through here, on the gateway's machine)."""
    bits, draw = rng.getrandbits, rng.random
    size = len(VOCAB)
    width = size.bit_length()
    tokens = []
    for _ in range(min(natural, max_new_tokens)):
        index = bits(width)
        while index >= size:  # what rng.randrange(size) draws, without its argument checks
            index = bits(width)
        tokens.append(Tok(FIRST_WORD_ID + index, _SPACED[index], -round(draw() * 3, 4)))
    if max_new_tokens <= natural:
        return Generation(tuple(tokens), "length")
    tokens.append(Tok(EOS_ID, EOS_TEXT, -round(draw(), 4), special=True))
    return Generation(tuple(tokens), "eos_token")


def _find_stop(text: str, stops: list[str], new_from: int) -> int | None:
    """Start of the earliest stop that ends inside the newest token's text, if any."""
    best: int | None = None
    for stop in stops:
        found = text.find(stop, max(0, new_from - len(stop) + 1))
        if found != -1 and (best is None or found < best):
            best = found
    return best


_SCRIPT_PIECE = re.compile(r"\s*\S+|\s+")


def scripted(text: str, *, seed: int, max_new_tokens: int, stop: Sequence[str] = (),
             special_prefix: str | None = None) -> Generation:
    """A generation whose text is decided elsewhere (a tool call, a JSON answer): one token per
    whitespace-led run, an optional special token first (``<|python_tag|>``), then EOS; cut to
    ``max_new_tokens`` (finish ``length``) or at a stop string (finish ``stop_sequence``), as ``generate``."""
    rng = random.Random(f"{seed}|scripted|{text}")
    pieces = [Tok(piece_id(special_prefix), special_prefix, -0.01, special=True)] if special_prefix else []
    pieces += [Tok(piece_id(p), p, -round(rng.random(), 4)) for p in _SCRIPT_PIECE.findall(text)]
    stops = [s for s in stop if s]
    tokens: list[Tok] = []
    shown = ""
    for tok in pieces[:max_new_tokens]:
        tokens.append(tok)
        if tok.special:
            continue
        shown += tok.text
        hit = _find_stop(shown, stops, len(shown) - len(tok.text)) if stops else None
        if hit is not None:
            return Generation(tuple(tokens), "stop_sequence", hit)
    if len(pieces) >= max_new_tokens:
        return Generation(tuple(tokens), "length")
    tokens.append(Tok(EOS_ID, EOS_TEXT, -round(rng.random(), 4), special=True))
    return Generation(tuple(tokens), "eos_token")
