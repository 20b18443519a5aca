"""Token counts when the backend does not report them.

Order of preference (DESIGN.md): the backend's own counts (`source=backend`), then the endpoint's local
tokenizer when the config names one (`source=tokenizer`), then this estimate (`source=estimate`): one token per 4 UTF-8
characters, rounded up, at least 1 for non-empty text. Four characters per token is the usual rule
of thumb for English with BPE vocabularies of Llama's size; it over-counts code and under-counts
CJK, which is why the source is always reported next to the number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from service.canonical import Decoded, TokenSource, Usage

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


class TokenCounter(Protocol):
    source: TokenSource

    def count(self, text: str) -> int: ...


class Estimate:
    source = TokenSource.ESTIMATE

    def count(self, text: str) -> int:
        return estimate_tokens(text)


class LocalTokenizer:
    """Counts with the model's own `tokenizer.json` (Hugging Face `tokenizers`), loaded once at config load.

    Special tokens are not added: the prompt text already carries the chat template's markers.
    """

    source = TokenSource.TOKENIZER

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer  # imported here: only configs that name a tokenizer pay for it

        self._tokenizer = Tokenizer.from_file(str(path))

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else 0


ESTIMATE = Estimate()


def resolve_usage(decoded: Decoded, prompt_text: str, completion_texts: list[str],
                  counter: TokenCounter = ESTIMATE, max_new_tokens: int | None = None) -> Usage:
    """The backend's counts where it gave them, the counter's for the rest; the weakest source is reported.

    A counted completion is capped at max_new_tokens per choice: the container cannot have generated more,
    whatever a local count of the text says (an estimate over-counts multi-byte text)."""
    prompt = decoded.prompt_tokens
    completion = decoded.completion_tokens
    exact = prompt is not None and completion is not None
    if completion is None:
        counts = [counter.count(text) for text in completion_texts]
        completion = sum(min(c, max_new_tokens) if max_new_tokens else c for c in counts)
    return Usage(
        prompt_tokens=prompt if prompt is not None else counter.count(prompt_text),
        completion_tokens=completion,
        source=TokenSource.BACKEND if exact else counter.source,
    )
