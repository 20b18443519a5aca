"""JumpStart Meta Llama 2 container (sections 4.2, 4.3).

- EULA: with ``requires_eula`` every request must carry ``accept_eula=true`` in
  ``X-Amzn-SageMaker-Custom-Attributes``; otherwise it fails (400, wrapped as ModelError by SageMaker).
- ``inputs``: a list holding exactly one dialog (system optional and first, then user/assistant alternating,
  ending with user) → ``[{"generation": {"role": "assistant", "content": ...}}]``; or a string →
  ``[{"generation": "..."}]`` (``return_full_text`` prepends the prompt).
- ``parameters``: only ``max_new_tokens`` (> 0), ``temperature`` (> 0), ``top_p`` (0-1) and
  ``return_full_text``. Any other key is rejected: that strictness is the simulator's choice, so a gateway
  that forwards a key the real container would choke on or silently ignore is caught in tests.
- Output does not depend on temperature: Meta's reference code seeds its RNG once at load, and the simulator
  keeps answers reproducible by using seed 0 for every request.
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
    parse_custom_attributes,
    toolkit_error,
    toolkit_error_body,
    wrong_type,
)
from service.simulator.textgen import count_tokens, generate

EULA_MESSAGE = ("Need to pass custom_attributes='accept_eula=true' as part of the request header. This confirms "
                "that you have read and accept the end-user license agreement (EULA) of the model.")
SPECIAL_TAGS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
TAGS_ERROR = "Error: special tags are not allowed as part of the prompt."
_PARAMS: dict[str, Callable[[Any], bool]] = {
    "max_new_tokens": is_int, "temperature": is_num, "top_p": is_num, "return_full_text": is_bool,
}


def _bad(message: str) -> ContainerError:
    return toolkit_error(400, message)


def render_dialog(dialog: list[dict[str, str]]) -> str:
    """Llama 2 chat format (section 4.4): system folded into the first user turn, one [INST] block per turn."""
    if dialog[0]["role"] == "system":
        first = dialog[1]["content"]
        dialog = [{"role": "user", "content": f"<<SYS>>\n{dialog[0]['content']}\n<</SYS>>\n\n{first}"}, *dialog[2:]]
    text = ""
    for i in range(0, len(dialog) - 1, 2):
        text += f"<s>[INST] {dialog[i]['content'].strip()} [/INST] {dialog[i + 1]['content'].strip()} </s>"
    return text + f"<s>[INST] {dialog[-1]['content'].strip()} [/INST]"


def _check_dialog(dialog: Any) -> list[dict[str, str]]:
    if not isinstance(dialog, list) or not dialog:
        raise _bad("Each dialog must be a non-empty list of {role, content} messages")
    if not all(isinstance(m, dict) and is_str(m.get("role")) and is_str(m.get("content")) for m in dialog):
        raise _bad("Each message must be an object with string 'role' and 'content'")
    turns = dialog[1:] if dialog[0]["role"] == "system" else dialog
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    if not turns or [m["role"] for m in turns] != expected:
        raise _bad("model only supports 'system', 'user' and 'assistant' roles, starting with 'system', then "
                   "'user' and alternating (u/a/u/a/u...)")
    if turns[-1]["role"] != "user":
        raise _bad(f"Last message must be from user, got {turns[-1]['role']}")
    return dialog


def _check_params(p: Any) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise _bad("'parameters' must be an object")
    unknown = sorted(set(p) - set(_PARAMS))
    if unknown:
        raise _bad(f"Unsupported parameter(s) {unknown}; supported: {sorted(_PARAMS)}")
    bad = wrong_type(p, _PARAMS)
    if bad:
        raise _bad(f"Invalid type for parameter '{bad}': {p[bad]!r}")
    if param(p, "max_new_tokens", 1) <= 0:
        raise _bad(f"max_new_tokens must be a positive integer, got {p['max_new_tokens']}")
    if param(p, "temperature", 1.0) <= 0:
        raise _bad(f"temperature must be a positive float, got {p['temperature']}")
    if not 0 <= param(p, "top_p", 0.9) <= 1:
        raise _bad(f"top_p must be between 0 and 1, got {p['top_p']}")
    return p


class MetaLlama:
    def handle(self, inv: Invocation) -> Output:
        attributes = parse_custom_attributes(inv.custom_attributes)
        if inv.endpoint.requires_eula and attributes.get("accept_eula", "").lower() != "true":
            raise _bad(EULA_MESSAGE)
        if inv.stream_api:
            raise _bad("This model does not support response streaming; use InvokeEndpoint")
        body = load_json_object(inv.body, _bad)
        p = _check_params(body.get("parameters") or {})
        inputs = body.get("inputs")
        if is_str(inputs):
            return self._complete(inv, inputs, p)
        if isinstance(inputs, list) and len(inputs) != 1:
            raise _bad(f"endpoint error prior to inference: batch size must be 1, got {len(inputs)} dialogs")
        if not isinstance(inputs, list):
            raise _bad("'inputs' must be a string or a list with one dialog")
        return self._chat(inv, _check_dialog(inputs[0]), p)

    def _generate_text(self, inv: Invocation, prompt: str, p: dict[str, Any]) -> tuple[str, int, int]:
        prompt_tokens, total = count_tokens(prompt), inv.endpoint.max_total_tokens
        if prompt_tokens >= total:
            raise _bad(f"Prompt of {prompt_tokens} tokens exceeds the model's maximum sequence length {total}")
        budget = min(param(p, "max_new_tokens", total), total - prompt_tokens)
        gen = generate(prompt, seed=0, max_new_tokens=budget)
        return gen.text.strip(), prompt_tokens, len(gen.tokens)

    def _complete(self, inv: Invocation, prompt: str, p: dict[str, Any]) -> Output:
        text, prompt_tokens, tokens = self._generate_text(inv, prompt, p)
        generation = prompt + text if param(p, "return_full_text", False) else text
        return Output("application/json", [dumps([{"generation": generation}])], prompt_tokens, tokens)

    def _chat(self, inv: Invocation, dialog: list[dict[str, str]], p: dict[str, Any]) -> Output:
        if any(tag in m["content"] for tag in SPECIAL_TAGS for m in dialog):
            # Meta's code answers such dialogs with an error string instead of failing the request.
            reply = {"generation": {"role": "assistant", "content": TAGS_ERROR}}
            return Output("application/json", [dumps([reply])], 0, 0)
        text, prompt_tokens, tokens = self._generate_text(inv, render_dialog(dialog), p)
        reply = {"generation": {"role": "assistant", "content": text}}
        return Output("application/json", [dumps([reply])], prompt_tokens, tokens)

    def error_body(self, status: int, message: str) -> bytes:
        return toolkit_error_body(status, message)
