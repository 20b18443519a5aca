"""LMI rolling-batch output shapes (section 3.2), shared by the vLLM and NeuronX behaviours.

Non-stream: an object ``{"generated_text", "details"?}``; ``details`` only with ``details: true``
(``finish_reason, generated_tokens, inputs, tokens`` and ``prefill`` with ``decoder_input_details``).
When several sequences were asked for (``n`` > 1 or ``num_beams`` > 1) LMI waits for the end and always
sends ``details`` with the best sequence, the others going to ``details.best_of_sequences`` (each with its
own ``generated_text``): this is what djl-serving's best-of JSON formatter does.
``details.top_tokens`` (with ``top_n_tokens``) lists, per token, that many token dicts.
Stream (``application/jsonlines``): ``{"token": {"id","text","log_prob"}}`` per line, ``special_token``
only on special tokens, the last line adding ``generated_text`` and, with ``details``, ``details`` without
``tokens``. Stop strings are hidden as vLLM does: the token that completes a stop shows only the text before
the stop, so the token texts always add up to ``generated_text``.
"""

from __future__ import annotations

from typing import Any

from service.simulator.containers.base import ContainerError, Output, dumps, param
from service.simulator.textgen import Generation, piece_id, prompt_pieces

JSONLINES = "application/jsonlines"


def error(message: str, status: int = 424) -> ContainerError:
    return ContainerError(status, error_body(status, message))


def error_body(status: int, message: str) -> bytes:
    return dumps({"code": status, "error": message})


def visible_texts(gen: Generation) -> list[str]:
    """Per-token text with special tokens empty and everything from a matched stop on removed."""
    keep = len(gen.text_without_stop)
    texts, offset = [], 0
    for tok in gen.tokens:
        if tok.special:
            texts.append("")
            continue
        texts.append(tok.text[: max(0, keep - offset)])
        offset += len(tok.text)
    return texts


def token_dicts(gen: Generation) -> list[dict[str, Any]]:
    out = []
    for tok, text in zip(gen.tokens, visible_texts(gen), strict=True):
        d: dict[str, Any] = {"id": tok.id, "text": text, "log_prob": tok.logprob}
        if tok.special:
            d["special_token"] = True
        out.append(d)
    return out


def _prefill(prompt: str) -> list[dict[str, Any]]:
    return [{"id": 1 if i == 0 else piece_id(piece), "text": piece, "log_prob": None if i == 0 else -1.0}
            for i, piece in enumerate(prompt_pieces(prompt))]


def _details(gen: Generation, prompt: str, p: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {"finish_reason": gen.finish, "generated_tokens": len(gen.tokens), "inputs": prompt,
                               "tokens": token_dicts(gen)}
    if param(p, "decoder_input_details", False):
        details["prefill"] = _prefill(prompt)
    if param(p, "top_n_tokens", 0) > 0:
        details["top_tokens"] = top_tokens(gen, p["top_n_tokens"])
    return details


def top_tokens(gen: Generation, n: int) -> list[list[dict[str, Any]]]:
    """``details.top_tokens``: per generated token, ``n`` token dicts (the chosen one first)."""
    return [[{"id": t.id + k, "text": t.text if k == 0 else f"{t.text}{k}", "log_prob": round(t.logprob - k, 4)}
             for k in range(n)] for t in gen.tokens]


def response(gens: list[Generation], prompt: str, p: dict[str, Any], prompt_tokens: int) -> Output:
    """The non-stream object; ``gens[0]`` is the best sequence."""
    prefix = prompt if param(p, "return_full_text", False) else ""
    best = gens[0]
    result: dict[str, Any] = {"generated_text": prefix + best.text_without_stop}
    if len(gens) > 1 or param(p, "num_beams", 1) > 1:
        details = _details(best, prompt, p)
        others = [{**_details(g, prompt, p), "generated_text": prefix + g.text_without_stop} for g in gens[1:]]
        for other in others:
            other.pop("inputs")
        if others:
            details["best_of_sequences"] = others
        result["details"] = details
    elif param(p, "details", False):
        result["details"] = _details(best, prompt, p)
    tokens = sum(len(g.tokens) for g in gens)
    return Output("application/json", [dumps(result)], prompt_tokens, tokens)


def stream(gen: Generation, prompt: str, p: dict[str, Any], prompt_tokens: int) -> Output:
    prefix = prompt if param(p, "return_full_text", False) else ""
    dicts = token_dicts(gen)
    lines = []
    for i, tok in enumerate(dicts):
        line: dict[str, Any] = {"token": tok}
        if i == len(dicts) - 1:
            line["generated_text"] = prefix + gen.text_without_stop
            if param(p, "details", False):
                line["details"] = {"finish_reason": gen.finish, "generated_tokens": len(dicts), "inputs": prompt}
                if param(p, "top_n_tokens", 0) > 0:  # top tokens come only in the final line's details
                    line["details"]["top_tokens"] = top_tokens(gen, p["top_n_tokens"])
        lines.append(dumps(line) + b"\n")
    return Output(JSONLINES, lines, prompt_tokens, len(dicts), streamed=True, error_line=stream_error_line)


def stream_error_line(message: str) -> bytes:
    return error_body(424, message) + b"\n"
