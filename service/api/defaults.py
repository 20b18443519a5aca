"""OpenAI request fields that current SDKs and frameworks send, which jumpgate serves only at their default value.

A field at one of its accepted values is removed before the body is validated (it changes nothing); any other
value is refused, and all refusals of a body are named in one 400 together with its unknown fields, so a client
fixes everything in one round trip. Values compare as JSON (`0` is not `false`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Default:
    """`accepted`: the JSON values that mean "the default"; `why`: what the client should know and do."""

    accepted: tuple[Any, ...]
    why: str

    def accepts(self, value: Any) -> bool:
        shown = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        return any(shown == orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in self.accepted)


@dataclass(frozen=True, slots=True)
class Refusal:
    name: str
    value: Any
    why: str


def _only_null(why: str) -> Default:
    return Default((None,), why)


#: fields of both OpenAI generation APIs (chat and legacy completions)
COMMON: Mapping[str, Default] = {
    "logit_bias": Default((None, {}), "SageMaker LLM containers take no logit bias: leave it out"),
    "service_tier": Default((None, "auto", "default"), "SageMaker endpoints have one service tier: send auto, "
                            "default, or leave it out"),
}

CHAT: Mapping[str, Default] = {
    **COMMON,
    "store": Default((None, False), "jumpgate stores no completions: send false or leave it out"),
    "modalities": Default((None, ["text"]), 'the models behind jumpgate write text only: send ["text"] or leave '
                          "it out"),
    "verbosity": Default((None, "medium"), "these models have no verbosity control: leave it out"),
    "reasoning_effort": _only_null("these models have no reasoning-effort control: leave it out"),
    "prediction": _only_null("predicted outputs are not supported: leave it out"),
    "audio": _only_null("audio output is not supported: leave it out"),
    "web_search_options": _only_null("jumpgate has no web search: leave it out"),
    "moderation": _only_null("jumpgate runs no moderation: leave it out"),
    "prompt_cache_key": _only_null("jumpgate keeps no prompt cache: leave it out"),
    "prompt_cache_options": _only_null("jumpgate keeps no prompt cache: leave it out"),
    "prompt_cache_retention": _only_null("jumpgate keeps no prompt cache: leave it out"),
    "functions": Default((None, []), "the deprecated `functions` are not supported: leave them out"),
    "function_call": Default((None, "none"), "the deprecated `function_call` is not supported: leave it out"),
}

COMPLETIONS: Mapping[str, Default] = {
    **COMMON,
    "echo": Default((None, False), "the prompt is not echoed: send false or leave it out"),
    "suffix": _only_null("suffixes (insertion) are not supported: leave it out"),
    "best_of": Default((None, 1), "best_of is not supported: send 1, or use n for several completions"),
}


def screen(data: dict[str, Any], table: Mapping[str, Default]) -> list[Refusal]:
    """Remove the fields of `table` that hold a default value from `data`; return the others, refused."""
    refused = []
    for name, rule in table.items():
        if name not in data:
            continue
        value = data.pop(name)
        if not rule.accepts(value):
            refused.append(Refusal(name, value, rule.why))
    return refused
