"""JumpStart text2text (FLAN-T5 / FLAN-UL2): `{text_inputs, <params top level>}` in, `generated_texts` out.

Wire facts (wire-formats.md 5): parameters sit at the top level of the JSON body, the length limit is
`max_length`, n is `num_return_sequences` and needs `num_beams >= n` (or sampling); no stop strings
(the gateway cuts the output), no token counts, no streaming.
"""

from __future__ import annotations

from service.adapters.base import json_payload, load_json, shape_error, text_choice
from service.adapters.features import ANY, Features, FeatureTable, ToolSupport
from service.adapters.logprobs import TokenTable
from service.adapters.params import EMULATED, UNSUPPORTED, Range, Rules, Sampling, WireParams, native
from service.canonical import Decoded, GenerationRequest
from service.errors import InvalidParam
from service.prompts.render import PromptSpec, render_text
from service.transport.base import Payload, RawResponse

POSITIVE = Range(lo=0, lo_open=True)


class Text2TextAdapter:
    name = "text2text"
    can_stream = False
    reports_counts = False  # no token counts: the gateway counts them
    token_data: TokenTable = {}  # no token data either (openai-surface.md 3.4)
    #: FLAN-T5 follows no tool or JSON format (openai-surface.md 8): tools and structured output are refused
    features: FeatureTable = {ANY: Features(tools=ToolSupport.NONE, prompts=False)}
    sampling = Sampling(greedy={"do_sample": False}, sample={"do_sample": True})
    rules: Rules = {
        "max_new_tokens": native("max_length", Range(lo=1)),
        "temperature": native("temperature", POSITIVE, sampling_only=True),
        "top_p": native("top_p", Range(0, 1), sampling_only=True),
        "top_k": native("top_k", Range(lo=1), sampling_only=True),
        "stop": EMULATED,
        "num_beams": native("num_beams", Range(lo=1)),
        "n": native("num_return_sequences", Range(lo=1)),
        "seed": native("seed", Range(lo=0)),
        "repetition_penalty": UNSUPPORTED,
        "presence_penalty": UNSUPPORTED,
        "frequency_penalty": UNSUPPORTED,
        "no_repeat_ngram_size": native("no_repeat_ngram_size", Range(lo=1, lo_open=True)),
        "do_sample": native("do_sample"),
    }

    def encode(self, req: GenerationRequest, spec: PromptSpec, wire: WireParams) -> Payload:
        n = wire.values.get("num_return_sequences", 1)
        beams = wire.values.get("num_beams")
        if n > 1 and beams is not None and beams < n:
            raise InvalidParam(f"`num_beams` ({beams}) must be at least `n` ({n}) on a text2text endpoint",
                               param="num_beams")
        if n > 1 and beams is None and not wire.values.get("do_sample"):
            raise InvalidParam("n > 1 on a text2text endpoint needs sampling (temperature > 0) "
                               f"or num_beams >= {n}", param="n")
        return json_payload({"text_inputs": render_text(req, spec), **wire.values})

    def decode_logprobs(self, raw: RawResponse) -> Decoded:
        return self.decode(raw)  # no token data to read

    def decode(self, raw: RawResponse) -> Decoded:
        data = load_json(raw, self.name)
        if not isinstance(data, dict):
            raise shape_error(self.name, '{"generated_texts": [...]}')
        texts = data.get("generated_texts", [data.get("generated_text")])
        if not isinstance(texts, list) or not texts:
            raise shape_error(self.name, '{"generated_texts": [...]}')
        return Decoded(choices=tuple(text_choice(t, None, self.name, i) for i, t in enumerate(texts)))
