"""Deterministic instances of a JSON Schema: what a simulated model answers when it must produce JSON.

The simulated model "reads" its prompt the way a small instruction model does: numbers in the user's text
fill integer and number fields in order, quoted text ('...' or "...") fills string fields, then words of
the text; the rest is drawn from a seeded PRNG. So "What is 3 + 4" gives ``{"a": 3, "b": 4}`` for an adder
tool, and the same seed and prompt always give the same instance. Supported: type (or a list of types),
const, enum, objects (required and some optional properties), arrays (items, prefixItems, minItems,
maxItems), strings (min/maxLength, pattern, common formats), numbers and integers (bounds, multipleOf),
booleans, null, anyOf / oneOf / allOf, and ``$ref`` into ``$defs`` / ``definitions``. Instances are checked
with ``jsonschema`` before being returned when a branch could be ambiguous (oneOf).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from service.simulator.containers import regex_sample

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)(?!\.\d)")
_QUOTED = re.compile(r"(?<!\w)'([^'\n]{1,200})'(?!\w)|\"([^\"\n]{1,200})\"")
_WORD = re.compile(r"[^\W\d_]{3,}")
_STOPWORDS = frozenset({
    "the", "and", "what", "which", "with", "that", "this", "from", "using", "use", "tool", "tools", "value",
    "please", "return", "json", "give", "tell", "about", "into", "your", "have", "will",
})
_FALLBACK_WORDS = ("alpha", "river", "Zürich", "garden", "東京", "signal")
_FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "12:00:00",
            "email": "user@example.com", "uri": "https://example.com/item", "hostname": "example.com",
            "ipv4": "192.0.2.1"}
MAX_DEPTH = 12


@dataclass(slots=True)
class Hints:
    """Values a prompt offers, used up in order as fields are filled."""

    numbers: list[str] = field(default_factory=list)
    quoted: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    @classmethod
    def from_text(cls, text: str) -> Hints:
        quoted = [a or b for a, b in _QUOTED.findall(text)]
        words = [w for w in _WORD.findall(text) if w.lower() not in _STOPWORDS]
        return cls(_NUMBER.findall(text), quoted, words)


class Instance:
    """One generation: the schema root (for ``$ref``), the PRNG and the prompt's hints."""

    def __init__(self, root: Any, rng: random.Random, hints: Hints | None = None) -> None:
        self.root = root
        self.rng = rng
        self.hints = hints or Hints()

    def make(self, schema: Any, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return None if depth > MAX_DEPTH else {}
        if "$ref" in schema:
            return self.make(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._enum(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self._branch(schema, key, depth)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self._resolve(part["$ref"]) if "$ref" in part else part)
            return self.make(merged, depth + 1)
        return _MAKERS[self._type(schema)](self, schema, depth)

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node

    def _type(self, schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            real = [k for k in kind if k != "null"]
            kind = real[0] if real else "null"
        if kind in _MAKERS:
            return str(kind)
        if "properties" in schema or "required" in schema:
            return "object"
        return "array" if "items" in schema else "string"

    def _enum(self, options: list[Any]) -> Any:
        words = {w.lower() for w in self.hints.words}
        mentioned = [o for o in options if isinstance(o, str) and o.lower() in words]
        return mentioned[0] if mentioned else options[self.rng.randrange(len(options))]

    def _branch(self, schema: dict[str, Any], key: str, depth: int) -> Any:
        # Prefer a non-null branch: an Optional field filled in is the informative case.
        branches = [b for b in schema[key] if not (isinstance(b, dict) and b.get("type") == "null")] or schema[key]
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        for branch in branches:
            value = self.make(_merge(base, branch) if base else branch, depth + 1)
            if key == "anyOf" or _exactly_one(self.root, schema[key], value):
                return value
        return self.make(branches[0], depth + 1)

    def take_number(self, integer: bool) -> float | int | None:
        for i, text in enumerate(self.hints.numbers):
            if integer and "." in text:
                continue
            del self.hints.numbers[i]
            return int(text) if integer else float(text)
        return None


def _merge(a: dict[str, Any], b: Any) -> dict[str, Any]:
    if not isinstance(b, dict):
        return a
    merged = {**a, **b}
    if isinstance(a.get("properties"), dict) and isinstance(b.get("properties"), dict):
        merged["properties"] = {**a["properties"], **b["properties"]}
    if isinstance(a.get("required"), list) and isinstance(b.get("required"), list):
        merged["required"] = [*a["required"], *(r for r in b["required"] if r not in a["required"])]
    return merged


def _exactly_one(root: Any, branches: list[Any], value: Any) -> bool:
    matches = 0
    for branch in branches:
        probe = {**root, **branch} if isinstance(root, dict) and isinstance(branch, dict) else branch
        try:
            matches += jsonschema.Draft202012Validator(probe).is_valid(value)
        except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.RefResolutionError):
            return True
    return matches == 1


def _object(gen: Instance, schema: dict[str, Any], depth: int) -> dict[str, Any]:
    raw = schema.get("properties")
    properties: dict[str, Any] = raw if isinstance(raw, dict) else {}
    required = [r for r in schema.get("required", []) if isinstance(r, str)]
    out: dict[str, Any] = {}
    for name, sub in properties.items():
        if name in required or gen.rng.random() < 0.5:
            out[name] = gen.make(sub, depth + 1)
    for name in required:
        if name not in out:  # required but not described: any value satisfies it
            out[name] = gen.make({"type": "string"}, depth + 1)
    return out


def _array(gen: Instance, schema: dict[str, Any], depth: int) -> list[Any]:
    raw = schema.get("prefixItems")
    prefix: list[Any] = raw if isinstance(raw, list) else []
    low = max(int(schema.get("minItems", 1)), len(prefix))
    high = int(schema.get("maxItems", max(low, 3)))
    count = min(high, low + gen.rng.randrange(2))
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    return [gen.make(prefix[i] if i < len(prefix) else items, depth + 1) for i in range(count)]


def _string(gen: Instance, schema: dict[str, Any], depth: int) -> str:
    if isinstance(schema.get("pattern"), str):
        sampled = regex_sample.sample(schema["pattern"], gen.rng)
        if sampled is not None:
            return sampled
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    if schema.get("format") == "uuid":
        return f"{gen.rng.getrandbits(32):08x}-0000-4000-8000-{gen.rng.getrandbits(48):012x}"
    hints = gen.hints
    if hints.quoted:
        text = hints.quoted.pop(0)
    elif hints.words:
        text = hints.words.pop(gen.rng.randrange(len(hints.words)))
    else:
        text = _FALLBACK_WORDS[gen.rng.randrange(len(_FALLBACK_WORDS))]
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10_000))
    text = text[:high]
    return text + "x" * max(0, low - len(text))


def _number(gen: Instance, schema: dict[str, Any], depth: int, integer: bool = False) -> float | int:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low_open, high_open = "exclusiveMinimum" in schema, "exclusiveMaximum" in schema
    value = gen.take_number(integer)
    lo = (0 if high is None else high - 100) if low is None else low
    hi = lo + 100 if high is None else high
    outside = value is not None and ((low is not None and (value < low or (low_open and value == low)))
                                     or (high is not None and (value > high or (high_open and value == high))))
    if value is None or outside:
        value = gen.rng.randint(int(lo) + 1, max(int(lo) + 1, int(hi) - 1)) if hi - lo >= 2 else (lo + hi) / 2
        if not integer and hi - lo >= 2:
            value += 0.5  # a fractional number, so a oneOf of integer and number stays unambiguous
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        value = step * max(1, round(value / step))
    return int(value) if integer else float(value)


def _integer(gen: Instance, schema: dict[str, Any], depth: int) -> int:
    return int(_number(gen, schema, depth, integer=True))


_MAKERS: dict[str, Any] = {
    "object": _object, "array": _array, "string": _string, "number": _number, "integer": _integer,
    "boolean": lambda gen, schema, depth: gen.rng.random() < 0.5, "null": lambda gen, schema, depth: None,
}


def instance(schema: Any, rng: random.Random, hints: Hints | None = None) -> Any:
    """A value that satisfies ``schema`` (for the schemas listed in the module docstring)."""
    return Instance(schema, rng, hints).make(schema)
