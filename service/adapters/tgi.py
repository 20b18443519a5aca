"""Hugging Face TGI, generate schema: `{inputs, parameters, stream}` in, `[{generated_text, details}]` out.

Wire facts (wire-formats.md 2.2, 2.3): temperature must be > 0 and top_p strictly inside (0, 1), so
greedy is `do_sample: false` with no temperature and top_p 1 is never sent; at most 4 stop strings;
no beams; `best_of` returns a single text, so n > 1 is fanned out by the gateway. `/invocations`
defaults `return_full_text` to true for text-generation models, so it is always sent as false.
`details` (+ `decoder_input_details` when not streaming) are requested so token counts are exact; they carry
each token's logprob, and `top_n_tokens` (at most MAX_TOP_N_TOKENS, 5 by default) adds alternatives
(openai-surface.md 3.2).
A JSON Schema the output must satisfy is sent as `parameters.grammar` `{type: json, value}` (TGI >= 1.4.3,
openai-surface.md 2.2); images as markdown `![](data:...)` in `inputs` (section 4).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.adapters.base import (
    finish_reason,
    int_or_none,
    json_payload,
    load_json,
    shape_error,
    stream_failure,
    text_choice,
)
from service.adapters.decoders import JsonLineDecoder
from service.adapters.features import TGI_PAYLOAD_LIMIT, Features, FeatureTable, ImageSupport
from service.adapters.logprobs import ANY, TokenData, TokenTable, from_details, from_token
from service.adapters.params import EMULATED, UNSUPPORTED, Range, Rules, Sampling, WireParams, native
from service.adapters.plain import PlainToken
from service.canonical import Decoded, GenerationRequest, StreamEnd, StreamEvent, TokenDelta
from service.prompts.render import PromptSpec, markdown_images, render_text
from service.transport.base import Payload, RawResponse

POSITIVE = Range(lo=0, lo_open=True)


class TgiAdapter:
    name = "tgi"
    can_stream = True
    reports_counts = True  # prompt and completion tokens in every non-streaming answer
    token_data: TokenTable = {ANY: TokenData(5, launch_option=True)}
    features: FeatureTable = {
        ANY: Features(grammar=True, images=ImageSupport.MARKDOWN, payload_limit=TGI_PAYLOAD_LIMIT)}
    sampling = Sampling(greedy={"do_sample": False}, sample={"do_sample": True})
    rules: Rules = {
        "max_new_tokens": native("max_new_tokens", Range(lo=1)),
        "temperature": native("temperature", POSITIVE, sampling_only=True),
        "top_p": native("top_p", Range(0, 1, lo_open=True, hi_open=True), sampling_only=True),
        "top_k": native("top_k", Range(lo=1), sampling_only=True),
        "stop": native("stop", max_items=4),
        "num_beams": UNSUPPORTED,
        "n": EMULATED,
        "seed": native("seed", Range(lo=0)),
        "repetition_penalty": native("repetition_penalty", POSITIVE),
        "presence_penalty": UNSUPPORTED,  # only the Messages API maps it (to repetition_penalty)
        "frequency_penalty": native("frequency_penalty", Range(-2, 2)),
        "no_repeat_ngram_size": UNSUPPORTED,
        "do_sample": native("do_sample"),
    }

    def encode(self, req: GenerationRequest, spec: PromptSpec, wire: WireParams) -> Payload:
        parameters: dict[str, Any] = {
            **wire.values, "details": True, "return_full_text": False,
        }
        if not req.stream:
            parameters["decoder_input_details"] = True
        if req.logprobs and req.top_logprobs:
            parameters["top_n_tokens"] = req.top_logprobs
        if req.constraint is not None:
            parameters["grammar"] = {"type": "json", "value": req.constraint}
        text = render_text(markdown_images(req) if req.has_images else req, spec)
        return json_payload({"inputs": text, "parameters": parameters, "stream": req.stream})

    def decode(self, raw: RawResponse) -> Decoded:
        return self._decode(raw, logprobs=False)

    def decode_logprobs(self, raw: RawResponse) -> Decoded:
        return self._decode(raw, logprobs=True)

    def _decode(self, raw: RawResponse, *, logprobs: bool) -> Decoded:
        data = load_json(raw, self.name)
        item = data[0] if isinstance(data, list) and data else data
        if not isinstance(item, dict):
            raise shape_error(self.name, '[{"generated_text": ...}]')
        details = item.get("details") or {}
        prefill = details.get("prefill") or []
        choice = text_choice(item.get("generated_text"), details.get("finish_reason"), self.name)
        if logprobs:
            choice = replace(choice, logprobs=from_details(details.get("tokens"), details.get("top_tokens")))
        return Decoded(
            choices=(choice,),
            prompt_tokens=len(prefill) or None,  # TGI 3.x may return an empty prefill: count unknown
            completion_tokens=int_or_none(details.get("generated_tokens")),
        )

    def stream_decoder(self) -> TgiStream:
        return TgiStream()


class TgiStream(JsonLineDecoder):
    """`data:{"token":{...},"generated_text":null|str,"details":...}` events (wire-formats.md 2.5)."""

    schema = "tgi"
    # what `events` reads besides the token: the final object's `generated_text`, an `error` (top_tokens only with
    # log-probabilities, which `push_plain` leaves to `events`)
    plain = PlainToken("token", "text", ("special",), ("generated_text", "error"))

    def events(self, obj: dict[str, Any]) -> list[StreamEvent]:
        if obj.get("error") is not None:
            raise stream_failure(self.schema, obj["error"])
        token = obj.get("token") or {}
        text = token.get("text")
        out: list[StreamEvent] = []
        if isinstance(text, str) and text and not token.get("special"):
            entry = from_token(token, obj.get("top_tokens")) if self.with_logprobs else None
            out.append(TokenDelta(text, 0, (entry,) if entry else ()))  # positional: once per token
        if obj.get("generated_text") is not None:  # only the final event carries it
            details = obj.get("details") or {}
            out.append(StreamEnd(finish_reason(details.get("finish_reason")),
                                 int_or_none(details.get("input_length")),
                                 int_or_none(details.get("generated_tokens"))))
        return out
