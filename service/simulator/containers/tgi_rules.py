"""TGI's request validation (section 2.2) and wire helpers, shared by the Generate, Chat and Completion variants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from service.simulator.containers.base import (
    ContainerError,
    dumps,
    is_bool,
    is_dict,
    is_int,
    is_num,
    is_str,
    is_strs,
    is_uint,
    param,
)
from service.simulator.textgen import Tok, count_tokens

MAX_BEST_OF, MAX_STOP_SEQUENCES, MAX_TOP_N_TOKENS = 2, 4, 5
SSE = "text/event-stream"

PARAM_TYPES: dict[str, Callable[[Any], bool]] = {
    "best_of": is_uint, "decoder_input_details": is_bool, "details": is_bool, "do_sample": is_bool,
    "frequency_penalty": is_num, "max_new_tokens": is_uint, "repetition_penalty": is_num,
    "return_full_text": is_bool, "seed": is_uint, "stop": is_strs, "temperature": is_num, "top_k": is_int,
    "top_n_tokens": is_uint, "top_p": is_num, "truncate": is_uint, "typical_p": is_num, "watermark": is_bool,
    "adapter_id": is_str, "grammar": is_dict,
}


class Invalid(Exception):
    """A TGI validation error; the text is TGI's ``ValidationError`` display."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Validated generation settings shared by the Generate, Chat and Completion variants."""

    max_new_tokens: int
    seed: int | None  # reported seed: None when decoding greedily
    stop: list[str]
    input_length: int

    @property
    def generation_seed(self) -> int:
        return 0 if self.seed is None else self.seed


def validate(p: dict[str, Any], prompt: str, max_total: int, stream: bool, random_seed: Callable[[], int], *,
             max_top_n: int = MAX_TOP_N_TOKENS, extra_tokens: int = 0) -> Plan:
    """TGI's ``validate`` in its order; raises Invalid with TGI's message. ``extra_tokens``: image tokens."""
    sampling = _is_sampling(p)
    _check_best_of(p, sampling, stream)
    _check_ranges(p)
    stop = param(p, "stop", [])
    if len(stop) > MAX_STOP_SEQUENCES:
        raise Invalid(f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences. Given: {len(stop)}")
    if param(p, "top_n_tokens", 0) > max_top_n:
        raise Invalid(f"`top_n_tokens` must be >= 0 and <= {max_top_n}. Given: {p['top_n_tokens']}")
    if stream and param(p, "decoder_input_details", False):
        raise Invalid("`decoder_input_details` == true is not supported when streaming tokens")
    if not prompt:
        raise Invalid("`inputs` cannot be empty")
    input_length = _input_length(p, prompt, max_total - 1, extra_tokens)
    max_new = param(p, "max_new_tokens")
    if max_new is not None and input_length + max_new > max_total:
        raise Invalid(f"`inputs` tokens + `max_new_tokens` must be <= {max_total}. "
                      f"Given: {input_length} `inputs` tokens and {max_new} `max_new_tokens`")
    seed = (param(p, "seed") if p.get("seed") is not None else random_seed()) if sampling else None
    return Plan(max_total - input_length if max_new is None else max_new, seed, stop, input_length)


def _is_sampling(p: dict[str, Any]) -> bool:
    """do_sample, or any warper TGI would build (temperature != 1, top_k != 0, top_p < 1, typical_p < 1)."""
    return bool(param(p, "do_sample", False)
                or param(p, "temperature", 1.0) != 1.0 or param(p, "top_k", 0) != 0
                or param(p, "top_p", 1.0) < 1.0 or param(p, "typical_p", 1.0) < 1.0)


def _check_best_of(p: dict[str, Any], sampling: bool, stream: bool) -> None:
    best_of = param(p, "best_of", 1)
    if best_of == 0 or best_of > MAX_BEST_OF:
        raise Invalid(f"`best_of` must be > 0 and <= {MAX_BEST_OF}. Given: {best_of}")
    if best_of > 1 and not sampling:
        raise Invalid("you must use sampling when `best_of` is > 1")
    if best_of > 1 and p.get("seed") is not None:
        raise Invalid("`seed` must not be set when `best_of` > 1")
    if best_of > 1 and stream:
        raise Invalid("`best_of` != 1 is not supported when streaming tokens")


def _check_ranges(p: dict[str, Any]) -> None:
    if param(p, "temperature", 1.0) <= 0:
        raise Invalid("`temperature` must be strictly positive")
    if param(p, "repetition_penalty", 1.0) <= 0:
        raise Invalid("`repetition_penalty` must be strictly positive")
    if not -2.0 <= param(p, "frequency_penalty", 0.0) <= 2.0:
        raise Invalid("`frequency_penalty` must be >= -2.0 and <= 2.0")
    if not 0.0 < param(p, "top_p", 0.5) < 1.0:
        raise Invalid("`top_p` must be > 0.0 and < 1.0")
    if not 0.0 < param(p, "typical_p", 0.5) < 1.0:
        raise Invalid("`typical_p` must be > 0.0 and < 1.0")
    if param(p, "top_k", 1) <= 0:
        raise Invalid("`top_k` must be strictly positive")
    if p.get("max_new_tokens") == 0:
        raise Invalid("`max_new_tokens` must be strictly positive")


def _input_length(p: dict[str, Any], prompt: str, max_input: int, extra_tokens: int) -> int:
    n = count_tokens(prompt) + extra_tokens
    truncate = p.get("truncate")
    if truncate is not None:
        if truncate == 0 or truncate > max_input:
            raise Invalid(f"`truncate` must be strictly positive and less than {max_input}. Given: {truncate}")
        n = min(n, truncate)
    if n > max_input:
        raise Invalid(f"`inputs` must have less than {max_input} tokens. Given: {n}")
    return n


def validation_body(message: str) -> bytes:
    return dumps({"error": f"Input validation error: {message}", "error_type": "validation"})


def sse(obj: Any) -> bytes:
    """One SSE event; TGI writes ``data:`` with no space after the colon."""
    return b"data:" + orjson.dumps(obj) + b"\n\n"


def deserialize_error(reason: str) -> ContainerError:
    """What axum's JSON extractor answers for a body that does not fit (422, plain text)."""
    return ContainerError(422, f"Failed to deserialize the JSON body into the target type: {reason}".encode(),
                          "text/plain; charset=utf-8")


def token_json(t: Tok) -> dict[str, Any]:
    return {"id": t.id, "text": t.text, "logprob": t.logprob, "special": t.special}


def top_tokens(t: Tok, n: int) -> list[Tok]:
    """The chosen token first, then made-up runners-up with lower logprobs."""
    return [t, *(Tok(t.id + k, f"{t.text}{k}", round(t.logprob - k, 4)) for k in range(1, n))]
