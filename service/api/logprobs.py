"""Token log-probabilities in the OpenAI shapes (openai-surface.md 3.1).

Chat: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}],
"refusal": null}`, `bytes` being the token's UTF-8 (approximate for byte-fallback tokens that decode to U+FFFD).
Legacy completions: `{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}`, offsets
counted in characters from the start of the returned text (the prompt is never echoed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.canonical import TokenLogprob


def _token(entry: TokenLogprob) -> dict[str, Any]:
    return {"token": entry.token, "logprob": entry.logprob, "bytes": list(entry.token.encode())}


def chat(entries: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    if entries is None:
        return None
    return {"content": [{**_token(e), "top_logprobs": [_token(t) for t in e.top]} for e in entries],
            "refusal": None}


def legacy(entries: Sequence[TokenLogprob] | None, offset: int = 0) -> dict[str, Any] | None:
    """The legacy shape; `offset`: characters of the answer before these tokens (stream chunks after the first)."""
    if entries is None:
        return None
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{t.token: t.logprob for t in e.top} for e in entries], "text_offset": offsets}
