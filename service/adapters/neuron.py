"""LMI NeuronX (transformers-neuronx rolling batch) on Inferentia2 / Trainium.

Same payload and answer as `lmi` (composition: the LMI adapter with other rules), but the TNX slot
(wire-formats.md 3.6) reads temperature, top_k, top_p and seed only when `do_sample` is true, drops
string stop sequences (the gateway cuts the output instead), has no beams, no frequency penalty and
one sequence per request (n > 1 is fanned out). Prompts over the compiled `n_positions` budget are
silently cut by the container, so the router checks the endpoint's `context_length` before sending.
`details.tokens` carry logprobs, but TNX takes no `top_n_tokens` (openai-surface.md 3.4): no alternatives.
"""

from __future__ import annotations

from service.adapters.lmi import LmiAdapter
from service.adapters.logprobs import ANY, TokenData, TokenTable
from service.adapters.params import EMULATED, UNSUPPORTED, Range, Rules, native


class NeuronAdapter(LmiAdapter):
    name = "neuron"
    prefill_details = False
    reports_counts = False  # generated tokens only: the prompt is counted locally
    token_data: TokenTable = {ANY: TokenData(0)}
    rules: Rules = {
        "max_new_tokens": native("max_new_tokens", Range(lo=1)),
        "temperature": native("temperature", Range(0, lo_open=True), sampling_only=True),
        "top_p": native("top_p", Range(0, 1, lo_open=True), sampling_only=True),
        "top_k": native("top_k", Range(lo=1), sampling_only=True),
        "stop": EMULATED,
        "num_beams": UNSUPPORTED,
        "n": EMULATED,
        "seed": native("seed", Range(lo=0), sampling_only=True),
        "repetition_penalty": native("repetition_penalty", Range(lo=0, lo_open=True)),
        "presence_penalty": native("presence_penalty", Range(-2, 2)),
        "frequency_penalty": UNSUPPORTED,
        "no_repeat_ngram_size": UNSUPPORTED,
        "do_sample": native("do_sample"),
    }
