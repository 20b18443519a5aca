"""Token log-probabilities: what each schema's answers can carry (declared data), and the readers that turn the
containers' shapes into canonical `TokenLogprob`s (openai-surface.md section 3).

- TGI / LMI `details.tokens` (`logprob`, or LMI's `log_prob`), with `top_tokens` from `top_n_tokens`: one list of
  alternatives per generated token (non-streaming), or a flat list on each stream event (TGI).
- OpenAI-shaped `logprobs.content` (TGI Messages API, LMI vLLM chat). LMI's rolling-batch chat formatter is
  repaired: `logprobs` arrives as a one-element list, a stream's top entry has the logprob number as its `token`,
  and `bytes` are code points (they are recomputed as UTF-8 when rendered).
- Special tokens (EOS, `<|eot_id|>`, `<|python_tag|>`) are removed: by the container's `special` flag where it
  sends one, by their text where it does not (TGI's chat shape has no flag).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.canonical import TokenLogprob

#: token texts that are control tokens, not text: Llama 3 `<|...|>`, SentencePiece `<s>` / `</s>` and friends
SPECIAL_TEXT = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|<unk>|<pad>|<eos>|<bos>")
#: the container variant an endpoint declares when its config says nothing about the container
ANY = "*"


@dataclass(frozen=True, slots=True)
class TokenData:
    """Per-token log-probabilities a schema's answers carry on one container variant.

    `max_top`: alternatives per token the container returns at most (TGI MAX_TOP_N_TOKENS, 5 by default);
    `launch_option`: that cap is the container's launch setting, which `container.max_top_logprobs` overrides;
    `stream_top`: alternatives arrive with each streamed token (LMI sends them only at the end of a stream)."""

    max_top: int
    launch_option: bool = False
    stream_top: bool = True


#: a schema's declaration: container variant (`kind`, or `kind-async` for LMI async mode; `*` otherwise) → data.
#: An empty table: the schema's answers carry no token data.
TokenTable = Mapping[str, TokenData]


def token_data(table: TokenTable, variant: str, override: int | None) -> TokenData | None:
    """What an endpoint of this schema on this container variant can return; None: no token data."""
    data = table.get(variant) or table.get(ANY)
    if data is None:
        return None
    if override is not None and data.launch_option:
        return TokenData(override, True, data.stream_top)
    return data


def is_special(text: str) -> bool:
    return SPECIAL_TEXT.fullmatch(text) is not None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def from_token(token: Any, tops: Any = None) -> TokenLogprob | None:
    """One `details` token dict (`logprob` or `log_prob`) and its alternatives; None for special tokens."""
    if not isinstance(token, dict):
        return None
    text = token.get("text")
    logprob = _number(token.get("logprob", token.get("log_prob")))
    if not isinstance(text, str) or logprob is None or token.get("special") or token.get("special_token"):
        return None
    if not text or is_special(text):
        return None
    alternatives = tuple(t for t in (_alternative(x) for x in tops or ()) if t is not None)
    return TokenLogprob(text, logprob, alternatives)


def _alternative(token: Any) -> TokenLogprob | None:
    if not isinstance(token, dict) or not isinstance(token.get("text"), str):
        return None
    logprob = _number(token.get("logprob", token.get("log_prob")))
    return None if logprob is None else TokenLogprob(token["text"], logprob)


def from_details(tokens: Any, top_tokens: Any = None) -> tuple[TokenLogprob, ...] | None:
    """`details.tokens` with `details.top_tokens` (one list per token) → entries; None when there are none."""
    if not isinstance(tokens, list):
        return None
    tops: Sequence[Any] = top_tokens if isinstance(top_tokens, list) else ()
    entries = (from_token(t, tops[i] if i < len(tops) else None) for i, t in enumerate(tokens))
    return tuple(e for e in entries if e is not None)


def from_openai(logprobs: Any) -> tuple[TokenLogprob, ...] | None:
    """An OpenAI-shaped `logprobs` object (`{"content": [...]}`), or LMI's one-element list of it."""
    if isinstance(logprobs, list) and len(logprobs) == 1:
        logprobs = logprobs[0]  # LMI rolling-batch chat: a trailing comma makes it a list
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    entries = (_openai_entry(item) for item in content)
    return tuple(e for e in entries if e is not None)


def _openai_entry(item: Any) -> TokenLogprob | None:
    if not isinstance(item, dict) or not isinstance(item.get("token"), str):
        return None
    text, logprob = item["token"], _number(item.get("logprob"))
    if logprob is None or not text or is_special(text):
        return None
    tops = []
    for top in item.get("top_logprobs") or ():
        top_logprob = _number(top.get("logprob")) if isinstance(top, dict) else None
        if top_logprob is None:
            continue
        # LMI rolling-batch streams put the logprob number in `token`; their only entry is the chosen token
        token = top.get("token")
        tops.append(TokenLogprob(token if isinstance(token, str) else text, top_logprob))
    return TokenLogprob(text, logprob, tuple(tops))
