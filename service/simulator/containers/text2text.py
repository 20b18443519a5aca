"""JumpStart text2text (FLAN-T5 / FLAN-UL2), section 5.

- ``application/x-text``: the body is the prompt → ``{"generated_text": ...}`` with default settings.
- ``application/json``: ``{"text_inputs": ..., <parameters at top level>}`` → ``{"generated_texts": [...]}``,
  one per ``num_return_sequences``. Unknown keys are rejected.
- ``max_length`` caps the generated tokens (default 20, the Hugging Face generation default; for an
  encoder-decoder it bounds the decoder output). Decoded T5 text has no leading space.
- Several sequences need sampling or beams (``num_beams`` >= ``num_return_sequences``), as in transformers.
- No streaming: the response-stream API fails with a ModelError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.simulator.containers.base import (
    ContainerError,
    Invocation,
    Output,
    dumps,
    is_bool,
    is_int,
    is_num,
    is_str,
    load_json_object,
    param,
    toolkit_error,
    toolkit_error_body,
    wrong_type,
)
from service.simulator.textgen import count_tokens, generate

DEFAULT_MAX_LENGTH = 20
_PARAMS: dict[str, Callable[[Any], bool]] = {
    "max_length": is_int, "num_return_sequences": is_int, "num_beams": is_int, "no_repeat_ngram_size": is_int,
    "temperature": is_num, "early_stopping": is_bool, "do_sample": is_bool, "top_k": is_int, "top_p": is_num,
    "seed": is_int,
}


def _bad(message: str) -> ContainerError:
    return toolkit_error(400, message)


def _check(p: dict[str, Any]) -> None:
    n, beams = param(p, "num_return_sequences", 1), param(p, "num_beams", 1)
    rules = (
        (param(p, "max_length", 1) >= 1, f"max_length must be a positive integer, got {p.get('max_length')}"),
        (n >= 1, f"num_return_sequences must be a positive integer, got {n}"),
        # Only a given num_beams is held to the documented bound; sampling needs no beams for n > 1.
        ("num_beams" not in p or beams >= n, f"num_beams ({beams}) must be an integer >= num_return_sequences ({n})"),
        (param(p, "no_repeat_ngram_size", 2) > 1,
         f"no_repeat_ngram_size must be > 1, got {p.get('no_repeat_ngram_size')}"),
        (param(p, "temperature", 1.0) > 0, f"temperature must be a positive float, got {p.get('temperature')}"),
        (param(p, "top_k", 1) > 0, f"top_k must be a positive integer, got {p.get('top_k')}"),
        (0 <= param(p, "top_p", 0.5) <= 1, f"top_p must be between 0 and 1, got {p.get('top_p')}"),
    )
    for ok, message in rules:
        if not ok:
            raise _bad(message)
    if n > 1 and beams == 1 and not param(p, "do_sample", False):
        raise _bad(f"Greedy methods without beam search do not support `num_return_sequences` different than 1 "
                   f"(got {n}).")


class Text2Text:
    def handle(self, inv: Invocation) -> Output:
        if inv.stream_api:
            raise _bad("This model does not support response streaming; use InvokeEndpoint")
        kind = inv.content_type.split(";")[0].strip().lower()
        if kind == "application/x-text":
            try:
                prompt = inv.body.decode()
            except UnicodeDecodeError:
                raise _bad("The application/x-text body must be UTF-8") from None
            texts, tokens = self._generate(inv, prompt, {})
            return Output("application/json", [dumps({"generated_text": texts[0]})], count_tokens(prompt), tokens)
        if kind != "application/json":
            raise toolkit_error(415, f"Content type {inv.content_type!r} is not supported; "
                                     "use application/json or application/x-text")
        body = load_json_object(inv.body, _bad)
        prompt = body.pop("text_inputs", None)
        if not is_str(prompt):
            raise _bad("'text_inputs' is required and must be a string")
        unknown = sorted(set(body) - set(_PARAMS))
        if unknown:
            raise _bad(f"Unsupported parameter(s) {unknown}; supported: {sorted(_PARAMS)}")
        bad = wrong_type(body, _PARAMS)
        if bad:
            raise _bad(f"Invalid type for parameter '{bad}': {body[bad]!r}")
        _check(body)
        texts, tokens = self._generate(inv, prompt, body)
        return Output("application/json", [dumps({"generated_texts": texts})], count_tokens(prompt), tokens)

    def _generate(self, inv: Invocation, prompt: str, p: dict[str, Any]) -> tuple[list[str], int]:
        sampling = bool(param(p, "do_sample", False))
        seed = (p["seed"] if p.get("seed") is not None else inv.random_seed()) if sampling else 0
        max_length = param(p, "max_length", DEFAULT_MAX_LENGTH)
        gens = [generate(prompt, seed=seed, max_new_tokens=max_length, variant=i)
                for i in range(param(p, "num_return_sequences", 1))]
        return [g.text.strip() for g in gens], sum(len(g.tokens) for g in gens)

    def error_body(self, status: int, message: str) -> bytes:
        return toolkit_error_body(status, message)
