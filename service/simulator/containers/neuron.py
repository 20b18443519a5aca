"""LMI NeuronX (transformers-neuronx rolling batch), section 3.6: LMI shapes with TNX generation rules.

- ``do_sample`` defaults to false; only when true are ``temperature`` (default 0.9), ``top_k``, ``top_p``
  and ``seed`` used (and checked, with Hugging Face's warper messages).
- String ``stop_sequences`` are dropped (TNX only honours ``stop_token_ids``), as are ``n``/``num_beams``.
- The prompt is sliced to ``n_positions`` (``max_total_tokens``) and generation stops when prompt + output
  reaches it, with finish ``length``; an over-budget request is never a 4xx. A prompt that fills the whole
  window still yields the one token its prefill produces.
"""

from __future__ import annotations

from typing import Any

from service.simulator.containers import lmi_chat, lmi_format
from service.simulator.containers.base import Invocation, Output, param, render_messages
from service.simulator.containers.lmi import DEFAULT_MAX_NEW_TOKENS, check_request, load_body
from service.simulator.containers.meta_tools import respond
from service.simulator.textgen import count_tokens


def _check_sampling(p: dict[str, Any]) -> None:
    """Hugging Face logits-warper checks, which only run when sampling."""
    temperature, top_k, top_p = param(p, "temperature", 0.9), param(p, "top_k", 0), param(p, "top_p", 0.9)
    if temperature <= 0:
        raise lmi_format.error(f"`temperature` (={temperature}) has to be a strictly positive float, otherwise "
                               "your next token scores will be invalid.")
    if top_k < 0:
        raise lmi_format.error(f"`top_k` has to be a strictly positive integer, but is {top_k}")
    if not 0 < top_p <= 1:
        raise lmi_format.error(f"`top_p` has to be a float > 0 and < 1, but is {top_p}")


def _chat(inv: Invocation, body: dict[str, Any]) -> Output:
    """Chat through LMI's generic chat parser (section 1.5): its ``ChatProperties`` has no ``tools`` field, so
    ``tools`` / ``tool_choice`` are dropped without an error, and ``content`` must be a string or a list."""
    for m in body["messages"]:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str | list):
            raise lmi_format.error("1 validation error for ChatProperties: messages.content: Input should be a "
                                   "valid string or list")
    plain = {k: v for k, v in body.items() if k not in ("tools", "tool_choice")}
    prompt = render_messages(plain["messages"])
    prompt_tokens = min(count_tokens(prompt), inv.endpoint.max_total_tokens)
    room = inv.endpoint.max_total_tokens - prompt_tokens
    budget = max(1, min(param(plain, "max_tokens", DEFAULT_MAX_NEW_TOKENS), room))
    return lmi_chat.answer(inv, plain, prompt, budget, 0, [])


class Neuron:
    def handle(self, inv: Invocation) -> Output:
        body = load_body(inv)
        if "inputs" not in body and isinstance(body.get("messages"), list):
            return _chat(inv, body)
        prompt, p, stream = check_request(body)
        max_new = param(p, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        if max_new < 1:
            raise lmi_format.error(f"`max_new_tokens` must be greater than 0, but is {max_new}.")
        sampling = bool(param(p, "do_sample", False))
        if sampling:
            _check_sampling(p)
        n_positions = inv.endpoint.max_total_tokens
        prompt_tokens = min(count_tokens(prompt), n_positions)  # prefill slices input_ids to n_positions
        budget = max(1, min(max_new, n_positions - prompt_tokens))
        seed = (p["seed"] if p.get("seed") is not None else inv.random_seed()) if sampling else 0
        gen = respond(prompt, seed=seed, max_new_tokens=budget, fault=inv.tool_fault)  # string stops are dropped
        # Only the LMI keys TNX honours reach the formatter: no prefill, no extra sequences.
        shown: dict[str, Any] = {k: p[k] for k in ("details", "return_full_text") if k in p}
        if stream:
            return lmi_format.stream(gen, prompt, shown, prompt_tokens)
        return lmi_format.response([gen], prompt, shown, prompt_tokens)

    def error_body(self, status: int, message: str) -> bytes:
        return lmi_format.error_body(status, message)
