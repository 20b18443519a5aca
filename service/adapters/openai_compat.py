"""Containers that already speak the OpenAI API on /invocations: TGI >= 2.4 Messages / Completions,
LMI chat (wire-formats.md 2.6, 3.4).

Chat requests send `messages`; completions and native requests send `prompt`. Greedy is temperature
0 (TGI maps it to do_sample false); top_p 1 is never sent (TGI still rejects it here); at most 4
stop strings; TGI ignores `n`, so n > 1 is fanned out. TGI reads any `model` other than "tgi" as a
LoRA adapter id, so "tgi" is sent. Usage is always present in non-streaming answers.
Logprobs (openai-surface.md 3.2, 3.3): TGI caps `top_logprobs` at MAX_TOP_N_TOKENS (5) and includes special tokens;
LMI's rolling-batch chat returns one alternative whatever was asked, in a malformed shape that is repaired;
LMI async mode is vLLM's own OpenAI server.
Tools, images and constrained output: service/adapters/openai_tools.py.
"""

from __future__ import annotations

from typing import Any

from service.adapters.base import (
    finish_reason,
    int_or_none,
    json_payload,
    load_json,
    shape_error,
    stream_failure,
)
from service.adapters.decoders import JsonLineDecoder
from service.adapters.features import TGI_PAYLOAD_LIMIT, Features, FeatureTable, ImageSupport, ToolSupport
from service.adapters.logprobs import ANY, TokenData, TokenTable, from_openai
from service.adapters.openai_tools import ToolCallCollector, message_body, tool_calls, tool_fields
from service.adapters.params import (
    EMULATED,
    UNSUPPORTED,
    UNSUPPORTED_SAMPLING,
    Range,
    Rules,
    Sampling,
    WireParams,
    native,
)
from service.canonical import Choice, Decoded, FinishReason, GenerationRequest, StreamEnd, StreamEvent, TokenDelta
from service.prompts.render import PromptSpec
from service.transport.base import Payload, RawResponse

PENALTY = Range(-2, 2)


class OpenAICompatAdapter:
    name = "openai"
    can_stream = True
    reports_counts = True  # prompt and completion tokens in every non-streaming answer
    token_data: TokenTable = {ANY: TokenData(5, launch_option=True), "lmi": TokenData(1),
                              "lmi-async": TokenData(20, launch_option=True)}
    features: FeatureTable = {
        ANY: Features(tools=ToolSupport.NATIVE, tools_since="2.4.0", tools_need_grammar=True, grammar=True,
                      grammar_with_tools=False, images=ImageSupport.PARTS, payload_limit=TGI_PAYLOAD_LIMIT),
        "lmi": Features(tools=ToolSupport.NATIVE, tools_need_parser=True, required_native=False,
                        images=ImageSupport.PARTS, raw_prompts=False),
        "lmi-async": Features(tools=ToolSupport.NATIVE, tools_need_parser=True, images=ImageSupport.PARTS),
    }
    sampling = Sampling(greedy={"temperature": 0}, sample={})
    rules: Rules = {
        "max_new_tokens": native("max_tokens", Range(lo=1)),
        "temperature": native("temperature", Range(0, 2), sampling_only=True),
        "top_p": native("top_p", Range(0, 1, lo_open=True, hi_open=True), sampling_only=True),
        "top_k": UNSUPPORTED_SAMPLING,
        "stop": native("stop", max_items=4),
        "num_beams": UNSUPPORTED,
        "n": EMULATED,
        "seed": native("seed", Range(lo=0)),
        "repetition_penalty": UNSUPPORTED,
        "presence_penalty": native("presence_penalty", PENALTY),
        "frequency_penalty": native("frequency_penalty", PENALTY),
        "no_repeat_ngram_size": UNSUPPORTED,
        "do_sample": native("do_sample"),  # expressed through `sampling` (temperature 0)
    }

    def encode(self, req: GenerationRequest, spec: PromptSpec, wire: WireParams) -> Payload:
        body: dict[str, Any] = {"model": "tgi", **wire.values}
        if req.messages is not None:
            body["messages"] = [message_body(m) if m.parts or m.tool_calls or m.tool_call_id is not None
                                else {"role": m.role, "content": m.content} for m in req.messages]
            tool_fields(req, body)
        else:
            body["prompt"] = req.prompt or ""
        if req.logprobs:
            body["logprobs"] = True
            if req.top_logprobs:
                body["top_logprobs"] = req.top_logprobs
        if req.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return json_payload(body)

    def decode(self, raw: RawResponse) -> Decoded:
        return self._decode(raw, logprobs=False)

    def decode_logprobs(self, raw: RawResponse) -> Decoded:
        return self._decode(raw, logprobs=True)

    def _decode(self, raw: RawResponse, *, logprobs: bool) -> Decoded:
        data = load_json(raw, self.name)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            raise shape_error(self.name, 'a chat.completion or text_completion with "choices"')
        usage = data.get("usage") or {}
        return Decoded(
            choices=tuple(_choice(c, i, logprobs) for i, c in enumerate(choices)),
            prompt_tokens=int_or_none(usage.get("prompt_tokens")),
            completion_tokens=int_or_none(usage.get("completion_tokens")),
        )

    def stream_decoder(self) -> OpenAIStream:
        return OpenAIStream()


class OpenAIStream(JsonLineDecoder):
    """`chat.completion.chunk` / text completion chunks behind `data:` then `[DONE]` (TGI), or bare JSON
    lines (LMI jsonlines_chat). The finish reason is held until the usage chunk that may follow it."""

    schema = "openai"

    def __init__(self) -> None:
        super().__init__()
        self._finish: dict[int, FinishReason | None] = {}
        self._usage: dict[str, Any] | None = None
        self._calls = ToolCallCollector()

    def events(self, obj: dict[str, Any]) -> list[StreamEvent]:
        if obj.get("error") is not None:
            raise stream_failure(self.schema, obj["error"])
        out: list[StreamEvent] = []
        for item in obj.get("choices") or ():
            delta = item.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else item.get("text")
            index = int_or_none(item.get("index")) or 0
            if isinstance(text, str) and text:
                entries = from_openai(item.get("logprobs")) if self.with_logprobs else None
                out.append(TokenDelta(text, index, entries or ()))
            if isinstance(delta, dict) and delta.get("tool_calls"):
                self._calls.add(index, delta["tool_calls"])
            if item.get("finish_reason"):
                self._finish[index] = finish_reason(item["finish_reason"])
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        return out

    def end(self) -> list[StreamEvent]:
        # TGI >= 3.2 sends no chunk with a finish_reason after a tool call: the calls end the stream then
        if not self._finish and self._usage is None and not self._calls:
            return []  # no final chunk: the gateway reports an incomplete stream
        usage = self._usage or {}
        return [*self._calls.calls(), StreamEnd(self._finish.get(0), int_or_none(usage.get("prompt_tokens")),
                                                int_or_none(usage.get("completion_tokens")))]


def _choice(item: Any, position: int, logprobs: bool) -> Choice:
    if not isinstance(item, dict):
        raise shape_error("openai", "choices as objects")
    message = item.get("message")
    text = message.get("content") if isinstance(message, dict) else item.get("text")
    index = int_or_none(item.get("index"))
    return Choice(text=text if isinstance(text, str) else "", finish_reason=finish_reason(item.get("finish_reason")),
                  index=position if index is None else index, tool_calls=tool_calls(item, message),
                  logprobs=from_openai(item.get("logprobs")) if logprobs else None)
