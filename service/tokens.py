"""Token counts when the backend does not report them.

Order of preference (DESIGN.md): the backend's own counts (`source=backend`), then a local tokenizer
(`source=tokenizer`, a later issue), then this estimate (`source=estimate`): one token per 4 UTF-8
characters, rounded up, at least 1 for non-empty text. Four characters per token is the usual rule
of thumb for English with BPE vocabularies of Llama's size; it over-counts code and under-counts
CJK, which is why the source is always reported next to the number.
"""

from __future__ import annotations

from service.canonical import Decoded, TokenSource, Usage

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def resolve_usage(decoded: Decoded, prompt_text: str, completion_texts: list[str]) -> Usage:
    prompt = decoded.prompt_tokens
    completion = decoded.completion_tokens
    exact = prompt is not None and completion is not None
    return Usage(
        prompt_tokens=prompt if prompt is not None else estimate_tokens(prompt_text),
        completion_tokens=completion if completion is not None else sum(map(estimate_tokens, completion_texts)),
        source=TokenSource.BACKEND if exact else TokenSource.ESTIMATE,
    )
