"""DJL LMI with the vLLM rolling batch (section 3): ``{inputs, parameters, stream}`` and ``messages`` chat.

Parameters follow LMI's translation to vLLM (``translate_vllm_params``): ``max_new_tokens`` defaults to 30;
decoding is greedy when ``do_sample`` is false, when neither ``do_sample`` nor ``temperature`` is given, or
when ``temperature`` is 0; ``stop_sequences`` are vLLM stops (hidden from the output); unknown keys are
ignored. vLLM's ranges are enforced (temperature 0-2, top_p (0,1], top_k -1/0/>=1, penalties [-2,2],
repetition_penalty > 0, max_new_tokens >= 1). Failures are 424 ``{"code": 424, "error": ...}``; real LMI
only says "exception occurred during rolling batch inference" for a rejected sampling parameter, the
simulator appends vLLM's reason so a failing test says what was wrong. A prompt longer than the context
is rejected; prompt + max_new_tokens beyond it just stops on ``length`` (vLLM caps at max_model_len).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from service.simulator.containers import lmi_chat, lmi_format
from service.simulator.containers.base import (
    Invocation,
    Output,
    dumps,
    is_bool,
    is_dict,
    is_int,
    is_num,
    is_str,
    is_strs,
    param,
    render_messages,
    wrong_type,
)
from service.simulator.containers.meta_tools import respond
from service.simulator.textgen import count_tokens

DEFAULT_MAX_NEW_TOKENS = 30
_ROLLING = "exception occurred during rolling batch inference"

PARAM_TYPES: dict[str, Callable[[Any], bool]] = {
    "max_new_tokens": is_int, "temperature": is_num, "top_p": is_num, "top_k": is_int, "seed": is_int,
    "repetition_penalty": is_num, "presence_penalty": is_num, "frequency_penalty": is_num, "do_sample": is_bool,
    "details": is_bool, "return_full_text": is_bool, "decoder_input_details": is_bool, "stop_sequences": is_strs,
    "n": is_int, "num_beams": is_int, "best_of": is_int, "top_n_tokens": is_int, "ignore_eos_token": is_bool,
}
_CHAT_TYPES: dict[str, Callable[[Any], bool]] = {
    "max_tokens": is_int, "temperature": is_num, "top_p": is_num, "seed": is_int, "n": is_int, "stream": is_bool,
    "presence_penalty": is_num, "frequency_penalty": is_num, "logprobs": is_bool, "top_logprobs": is_int,
}


def load_body(inv: Invocation) -> dict[str, Any]:
    try:
        body = orjson.loads(inv.body)
    except orjson.JSONDecodeError as exc:
        raise lmi_format.error(f"Invalid request body: {exc}") from None
    if not isinstance(body, dict):
        raise lmi_format.error("Invalid request body: expected a JSON object")
    return body


def check_request(body: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """(inputs, parameters, stream) with their JSON types checked."""
    inputs, params, stream = body.get("inputs"), body.get("parameters") or {}, body.get("stream", False)
    if not is_str(inputs):
        raise lmi_format.error("Input key 'inputs' is required and must be a string (or send 'messages')")
    if not is_dict(params) or not is_bool(stream):
        raise lmi_format.error("'parameters' must be an object and 'stream' a boolean")
    bad = wrong_type(params, PARAM_TYPES)
    if bad:
        raise lmi_format.error(f"Invalid value for parameter '{bad}': {params[bad]!r}")
    return str(inputs), dict(params), bool(stream)


def _vllm_reject(reason: str) -> Exception:
    return lmi_format.error(f"{_ROLLING}: {reason}")


def check_vllm_ranges(p: dict[str, Any], max_key: str = "max_new_tokens") -> None:
    """vLLM SamplingParams checks (``_verify_args``), reported the way LMI surfaces them."""
    t = param(p, "temperature", 1.0)
    if not 0 <= t <= 2:
        raise _vllm_reject(f"temperature must be in [0, 2], got {t}.")
    if not 0 < param(p, "top_p", 1.0) <= 1:
        raise _vllm_reject(f"top_p must be in (0, 1], got {p['top_p']}.")
    if param(p, "top_k", 0) < -1:
        raise _vllm_reject(f"top_k must be -1 (disable), 0 (disable), or at least 1, got {p['top_k']}.")
    for key in ("presence_penalty", "frequency_penalty"):
        if not -2 <= param(p, key, 0.0) <= 2:
            raise _vllm_reject(f"{key} must be in [-2, 2], got {p[key]}.")
    if param(p, "repetition_penalty", 1.0) <= 0:
        raise _vllm_reject(f"repetition_penalty must be greater than zero, got {p['repetition_penalty']}.")
    if param(p, max_key, 1) < 1:
        raise _vllm_reject(f"max_tokens must be at least 1, got {p[max_key]}.")


def _budget(prompt_tokens: int, max_new: int, max_total: int) -> int:
    if prompt_tokens > max_total:
        raise lmi_format.error(f"Input prompt ({prompt_tokens} tokens) is too long and exceeds limit of {max_total}")
    return max(1, min(max_new, max_total - prompt_tokens))


def _greedy(p: dict[str, Any]) -> bool:
    """LMI >= 0.32: greedy unless sampling is asked for by do_sample or a temperature (0 is greedy too)."""
    do_sample, temperature = p.get("do_sample"), p.get("temperature")
    return do_sample is False or (do_sample is None and temperature is None) or temperature == 0


def _seed(inv: Invocation, p: dict[str, Any], greedy: bool) -> int:
    if greedy:
        return 0
    return p["seed"] if p.get("seed") is not None else inv.random_seed()


class Lmi:
    def handle(self, inv: Invocation) -> Output:
        body = load_body(inv)
        if "inputs" not in body and isinstance(body.get("messages"), list):
            return _chat(inv, body)
        prompt, p, stream = check_request(body)
        _check_rolling(p, stream)
        prompt_tokens = count_tokens(prompt)
        max_new = param(p, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        max_new = _budget(prompt_tokens, max_new, inv.endpoint.max_total_tokens)
        seed, stops = _seed(inv, p, _greedy(p)), param(p, "stop_sequences", [])
        gens = [respond(prompt, seed=seed, max_new_tokens=max_new, stop=stops, variant=i, fault=inv.tool_fault)
                for i in range(param(p, "n", 1))]
        if stream:
            return lmi_format.stream(gens[0], prompt, p, prompt_tokens)
        return lmi_format.response(gens, prompt, p, prompt_tokens)

    def error_body(self, status: int, message: str) -> bytes:
        return lmi_format.error_body(status, message)


def _check_rolling(p: dict[str, Any], stream: bool) -> None:
    check_vllm_ranges(p)
    n, beams = param(p, "n", 1), param(p, "num_beams", 1)
    if n < 1 or beams < 1:
        raise _vllm_reject(f"n and num_beams must be at least 1, got n={n}, num_beams={beams}.")
    if stream and (n > 1 or beams > 1):
        raise lmi_format.error("n > 1 and num_beams > 1 are only supported without streaming")
    if stream and param(p, "decoder_input_details", False):
        raise lmi_format.error("decoder_input_details is not supported with streaming")
    if any(s == "" for s in param(p, "stop_sequences", [])):
        raise _vllm_reject("stop cannot contain an empty string.")


def _chat(inv: Invocation, body: dict[str, Any]) -> Output:
    """LMI chat (section 3.4): field types and vLLM ranges are checked here, the rest is lmi_chat's."""
    bad = wrong_type(body, _CHAT_TYPES)
    stop = body.get("stop")
    if bad or not (stop is None or is_str(stop) or is_strs(stop)):
        raise lmi_format.error(f"Invalid value for chat field '{bad or 'stop'}'")
    check_vllm_ranges(body, "max_tokens")
    if not 0 <= param(body, "top_logprobs", 0) <= 20:
        raise lmi_format.error(f"top_logprobs must be between 0 and 20, got {body['top_logprobs']}")
    if not all(is_dict(m) and is_str(m.get("role")) for m in body["messages"]):
        raise lmi_format.error("Each message must be an object with a string 'role'")
    prompt = render_messages(body["messages"]) + _tools_text(body.get("tools"))
    prompt_tokens = count_tokens(prompt)
    max_new = _budget(prompt_tokens, param(body, "max_tokens", DEFAULT_MAX_NEW_TOKENS), inv.endpoint.max_total_tokens)
    seed = _seed(inv, body, param(body, "temperature", 1.0) == 0)
    stops = [stop] if isinstance(stop, str) else (stop or [])
    return lmi_chat.answer(inv, body, prompt, max_new, seed, stops)


def _tools_text(tools: Any) -> str:
    """The tool definitions a tool-aware chat template renders into the prompt (they cost prompt tokens)."""
    return "\n" + dumps(tools).decode() if isinstance(tools, list) and tools else ""
