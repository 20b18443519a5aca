"""TGI ``grammar`` (generate) and ``response_format`` (Messages API): validation and answers that obey them
(openai-surface.md section 2.2; TGI ``validation.rs``).

Shape ``{"type": "json" | "json_object" | "regex" | "json_schema", "value": ...}``; ``json_schema`` (value
``{name?, schema}``) exists from 3.3.0 only, so OpenAI's ``{"type": "json_object"}`` (no value) and
``{"type": "json_schema", "json_schema": ...}`` do not deserialize. A JSON value may be a string holding
JSON; it must pass the draft 2020-12 meta-schema and have a top-level ``properties`` ("Grammar must have a
'properties' field"); ``--disable-grammar-support`` makes any grammar "grammar is not supported". The
answer is a deterministic instance of the schema, or a string matching the regex.
"""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from service.simulator.containers import regex_sample
from service.simulator.containers.base import ContainerError, dumps, is_dict, is_str
from service.simulator.containers.jsonschema_instance import Hints, instance
from service.simulator.containers.tgi_rules import Invalid
from service.simulator.model import SimEndpoint


def deserializes(endpoint: SimEndpoint, grammar: Any) -> bool:
    """Whether ``grammar`` fits TGI's ``GrammarType`` for this version (else the body matches no variant)."""
    if not is_dict(grammar) or "value" not in grammar:
        return False
    kind = grammar.get("type")
    if kind == "json_schema":
        value = grammar["value"]
        return endpoint.at_least("3.3.0") and is_dict(value) and "schema" in value
    return kind in ("json", "json_object", "regex")


def validate(endpoint: SimEndpoint, grammar: dict[str, Any]) -> tuple[str, Any]:
    """("json", schema) or ("regex", pattern); raises Invalid with TGI's message."""
    if not endpoint.grammar:
        raise Invalid("grammar is not supported")
    kind, value = grammar["type"], grammar["value"]
    if kind == "regex":
        if not is_str(value):
            raise Invalid("grammar is not supported")
        return "regex", value
    if kind == "json_schema":
        value = value["schema"]
    if is_str(value):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise Invalid(f"grammar is not valid: {exc}") from None
    if not is_dict(value):
        raise Invalid("grammar is not supported")
    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.exceptions.SchemaError as exc:
        raise Invalid(f"grammar is not valid: {exc.message}") from None
    if "properties" not in value:
        raise Invalid("grammar is not valid: Grammar must have a 'properties' field")
    return "json", value


def answer(kind: str, value: Any, rng: random.Random, hint_text: str) -> str:
    """Text that satisfies the grammar."""
    if kind == "regex":
        text = regex_sample.sample(value, rng)
        if text is None:  # the Python server's regex compilation fails: a generation error
            raise ContainerError(424, dumps({"error": f"Request failed during generation: cannot build a regex "
                                                      f"automaton for {value[:80]!r}", "error_type": "generation"}))
        return text
    return json.dumps(instance(value, rng, Hints.from_text(hint_text)), ensure_ascii=False)
