"""DJL LMI rolling batch (vLLM / lmi-dist / TRT-LLM): `{inputs, parameters}` in, `{generated_text, details}` out.

Wire facts (wire-formats.md 3.1, 3.2): stop strings are `stop_sequences`; `n` and `num_beams` work
only without streaming; temperature 0..2. `do_sample` is always sent because its default flipped
between LMI 0.31 and 0.32. The answer is an object (a list with `OPTION_TGI_COMPAT`); both are read.
One invalid request can fail a whole rolling batch (3.3), so ranges are checked here before sending.
Token logprobs come in `details.tokens` (`log_prob`, `special_token`), alternatives from `top_n_tokens` in
`details.top_tokens`; streams carry the chosen token's logprob per line but alternatives only in the last line,
and in async mode `top_n_tokens` would become vLLM's `n`, so it is never sent there (openai-surface.md 3.3).
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
from service.adapters.features import Features, FeatureTable
from service.adapters.logprobs import ANY, TokenData, TokenTable, from_details, from_token
from service.adapters.params import UNSUPPORTED, Range, Rules, Sampling, WireParams, native
from service.adapters.plain import PlainToken
from service.canonical import Choice, Decoded, GenerationRequest, StreamEnd, StreamEvent, TokenDelta
from service.errors import UpstreamModelError, redact
from service.prompts.render import PromptSpec, render_text
from service.transport.base import Payload, RawResponse

PENALTY = Range(-2, 2)


class LmiAdapter:
    name = "lmi"
    can_stream = True
    reports_counts = True  # prompt and completion tokens in every non-streaming answer
    features: FeatureTable = {ANY: Features()}  # text in, text out: tools and JSON through the prompt
    #: vLLM / lmi-dist report prompt tokens in `details.prefill` when asked; NeuronX does not take it
    prefill_details = True
    #: vLLM's max_logprobs (20 unless launched otherwise; openai-surface.md marks the default unverified)
    token_data: TokenTable = {ANY: TokenData(20, launch_option=True, stream_top=False), "lmi-async": TokenData(0)}
    sampling = Sampling(greedy={"do_sample": False}, sample={"do_sample": True})
    rules: Rules = {
        "max_new_tokens": native("max_new_tokens", Range(lo=1)),
        "temperature": native("temperature", Range(0, 2), sampling_only=True),
        "top_p": native("top_p", Range(0, 1, lo_open=True), sampling_only=True),
        "top_k": native("top_k", Range(lo=1), sampling_only=True),
        "stop": native("stop_sequences"),
        "num_beams": native("num_beams", Range(lo=1), stream_ok=False),
        "n": native("n", Range(lo=1), stream_ok=False),
        "seed": native("seed", Range(lo=0)),
        "repetition_penalty": native("repetition_penalty", Range(lo=0, lo_open=True)),
        "presence_penalty": native("presence_penalty", PENALTY),
        "frequency_penalty": native("frequency_penalty", PENALTY),
        "no_repeat_ngram_size": UNSUPPORTED,
        "do_sample": native("do_sample"),
    }

    def encode(self, req: GenerationRequest, spec: PromptSpec, wire: WireParams) -> Payload:
        parameters: dict[str, Any] = {**wire.values, "details": True, "return_full_text": False}
        if self.prefill_details and not req.stream:
            parameters["decoder_input_details"] = True
        if req.logprobs and req.top_logprobs:
            parameters["top_n_tokens"] = req.top_logprobs
        body: dict[str, Any] = {"inputs": render_text(req, spec), "parameters": parameters}
        if req.stream:
            body["stream"] = True
        return json_payload(body)

    def decode(self, raw: RawResponse) -> Decoded:
        return self._decode(raw, logprobs=False)

    def decode_logprobs(self, raw: RawResponse) -> Decoded:
        return self._decode(raw, logprobs=True)

    def _decode(self, raw: RawResponse, *, logprobs: bool) -> Decoded:
        data = load_json(raw, self.name)
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(item, dict) for item in items):
            raise shape_error(self.name, '{"generated_text": ...}')
        choices: list[Choice] = []
        completion = 0
        prompt: int | None = None
        for item in items:
            texts = item.get("generated_text")
            details = item.get("details") or {}
            _raise_on_error(item, details)
            # n > 1 / beams: the best sequence, then the others in `details.best_of_sequences` (djl's best-of
            # formatter); also accepted: a list of texts in one object, or one object per sequence
            for text in texts if isinstance(texts, list) else [texts]:
                choices.append(_choice(text, details, len(choices), logprobs))
            for seq in details.get("best_of_sequences") or ():
                choices.append(_choice(seq.get("generated_text"), seq, len(choices), logprobs))
                completion += int_or_none(seq.get("generated_tokens")) or 0
            completion += int_or_none(details.get("generated_tokens")) or 0
            prompt = prompt or len(details.get("prefill") or []) or None
        counted = all(int_or_none((item.get("details") or {}).get("generated_tokens")) is not None
                      for item in items)
        return Decoded(tuple(choices), prompt_tokens=prompt, completion_tokens=completion if counted else None)

    def stream_decoder(self) -> LmiStream:
        return LmiStream()


class LmiStream(JsonLineDecoder):
    """JSON lines `{"token":{"text",...}}`, the last adding `generated_text` and `details` (3.2); the
    same objects behind `data:` with the sse / tgi_compat formatters; `{"outputs": [...]}` for dynamic batch."""

    schema = "lmi"
    # what `events` reads besides the token: an `error`, `details` (the final object's, or a failed generation's),
    # dynamic batch's `outputs`, the final object's `generated_text`
    plain = PlainToken("token", "text", ("special_token", "special"), ("error", "details", "outputs", "generated_text"))

    def events(self, obj: dict[str, Any]) -> list[StreamEvent]:
        details = obj.get("details") or {}
        _raise_on_error(obj, details, stream=True)
        token = obj.get("token") or {}
        text = token.get("text")
        out: list[StreamEvent] = []
        if isinstance(text, str) and text and not (token.get("special_token") or token.get("special")):
            entry = from_token(token) if self.with_logprobs else None
            out.append(TokenDelta(text, 0, (entry,) if entry else ()))  # positional: once per token
        out.extend(TokenDelta(t) for t in obj.get("outputs") or () if isinstance(t, str) and t)
        if obj.get("generated_text") is not None or obj.get("details"):
            out.append(StreamEnd(finish_reason(details.get("finish_reason")), int_or_none(details.get("input_length")),
                                 int_or_none(details.get("generated_tokens"))))
        return out


def _choice(text: Any, details: dict[str, Any], index: int, logprobs: bool) -> Choice:
    choice = text_choice(text, details.get("finish_reason"), "lmi", index)
    if not logprobs:
        return choice
    return replace(choice, logprobs=from_details(details.get("tokens"), details.get("top_tokens")))


def _raise_on_error(item: dict[str, Any], details: dict[str, Any], *, stream: bool = False) -> None:
    """LMI reports a failed generation in the body: an `error` field or `finish_reason: error` (3.3)."""
    if item.get("error") is not None or details.get("finish_reason") == "error":
        detail = item.get("error") or "the generation failed (finish_reason error)"
        if stream:
            raise stream_failure("lmi", detail)
        raise UpstreamModelError(f"the lmi endpoint failed: {redact(str(detail))}")
