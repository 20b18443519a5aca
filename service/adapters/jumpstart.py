"""JumpStart Meta Llama container (Llama 2 chat, v1/v2 model versions): dialogs in, `generation` out.

Wire facts (wire-formats.md 4.1-4.3): `inputs` is a list of dialogs (batch size 1), each a list of
`{role, content}` with an optional leading system message, then user / assistant alternating, ending
with user (consecutive messages of one role are merged first, as by the llama2 chat template); parameters
are only `max_new_tokens`, `temperature` (> 0) and `top_p` (0..1). There is no `do_sample`: greedy is asked
for with a near-zero temperature (`GREEDY_TEMPERATURE`; 0 itself is not documented as valid). No stop
strings, seeds, token counts or streaming. The EULA custom attribute comes from the endpoint's
`custom_attributes` in the config, which the transport sends.
Later JumpStart versions answer `[{"generated_text"}]` or `{"generated_text"}` (4.1); those are read too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.adapters.base import json_payload, load_json, shape_error, text_choice
from service.adapters.features import ANY, Features, FeatureTable
from service.adapters.logprobs import TokenTable
from service.adapters.params import (
    BEST_EFFORT,
    EMULATED,
    UNSUPPORTED,
    UNSUPPORTED_SAMPLING,
    Range,
    Rules,
    Sampling,
    WireParams,
    native,
)
from service.canonical import Decoded, GenerationRequest, Message
from service.errors import InvalidParam
from service.prompts.render import PromptSpec
from service.prompts.templates import merge_runs
from service.transport.base import Payload, RawResponse

GREEDY_TEMPERATURE = 0.01


class JumpStartAdapter:
    name = "jumpstart"
    can_stream = False
    reports_counts = False  # no token counts: the gateway counts them
    token_data: TokenTable = {}  # no token data either (openai-surface.md 3.4)
    features: FeatureTable = {ANY: Features()}  # dialogs of text: tools and JSON through the prompt, if configured
    sampling = Sampling(greedy={"temperature": GREEDY_TEMPERATURE}, sample={})
    rules: Rules = {
        "max_new_tokens": native("max_new_tokens", Range(lo=1)),
        "temperature": native("temperature", Range(0, lo_open=True), sampling_only=True),
        "top_p": native("top_p", Range(0, 1), sampling_only=True),
        "top_k": UNSUPPORTED_SAMPLING,
        "stop": EMULATED,
        "num_beams": UNSUPPORTED,
        "n": EMULATED,
        "seed": BEST_EFFORT,
        "repetition_penalty": UNSUPPORTED,
        "presence_penalty": UNSUPPORTED,
        "frequency_penalty": UNSUPPORTED,
        "no_repeat_ngram_size": UNSUPPORTED,
        "do_sample": native("do_sample"),  # expressed through `sampling` (temperature)
    }

    def encode(self, req: GenerationRequest, spec: PromptSpec, wire: WireParams) -> Payload:
        messages = req.messages if req.messages is not None else (Message("user", req.prompt or ""),)
        return json_payload({"inputs": [dialog(messages)], "parameters": wire.values})

    def decode_logprobs(self, raw: RawResponse) -> Decoded:
        return self.decode(raw)  # no token data to read

    def decode(self, raw: RawResponse) -> Decoded:
        data = load_json(raw, self.name)
        item = data[0] if isinstance(data, list) and data else data
        if not isinstance(item, dict):
            raise shape_error(self.name, '[{"generation": ...}]')
        generation = item.get("generation", item.get("generated_text"))
        if isinstance(generation, dict):
            generation = generation.get("content")
        return Decoded(choices=(text_choice(generation, None, self.name),))


def dialog(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Merge runs of one role (as the llama2 chat template does), check the turn order the Meta container
    requires and build one dialog."""
    turns = merge_runs(messages)
    start = 1 if turns and turns[0].role == "system" else 0
    for i, message in enumerate(turns[start:]):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role != expected:
            raise InvalidParam(
                f"messages[{start + i}] has role '{message.role}' but this model needs an optional system "
                "message, then user and assistant turns alternating, starting and ending with user",
                param="messages")
    if len(turns) == start or turns[-1].role != "user":
        raise InvalidParam("the last message must come from the user for this model", param="messages")
    return [{"role": m.role, "content": m.content} for m in turns]
