"""JSON Schema, as clients send it in `tools[].function.parameters` and `response_format.json_schema.schema`.

`check_schema` says whether a client's schema is one the gateway will use: valid against the draft 2020-12
meta-schema (the draft the OpenAI API documents and TGI's grammar validation checks against), with local `$ref`s
only (a remote `$ref` would make validation fetch a URL the client chose). `validate` checks a model's output
against it. Both use the `jsonschema` library, except that `pattern` and `patternProperties` are matched with the
`regex` module under a time limit: a client's pattern such as `(a+)+$` would otherwise let one request hold the
event loop for seconds in Python's backtracking `re` (hostile input is normal input). The libraries are imported
on first use: a gateway that never sees a schema does not carry them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

#: how long one `pattern` may take to match one string before the match counts as failed
PATTERN_TIMEOUT_S = 0.05


def _search(pattern: str, text: str) -> bool:
    import regex  # type: ignore[import-untyped]

    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT_S) is not None
    except TimeoutError:
        return False
    except regex.error:
        return False


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    import jsonschema  # type: ignore[import-untyped]

    if isinstance(instance, str) and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance[:64]!r} does not match {pattern[:64]!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict) or not isinstance(patterns, dict):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


@cache
def _bounded() -> Any:
    """Draft 2020-12 with the time-limited pattern keywords (built once, on first use)."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties})


def check_schema(schema: Any) -> str | None:
    """None when `schema` is usable, else why not (for a 400)."""
    import jsonschema

    if not isinstance(schema, Mapping):
        return "a JSON Schema must be a JSON object"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"not a valid JSON Schema (draft 2020-12){f' at {where}' if where else ''}: {exc.message[:200]}"
    remote = next(_remote_refs(schema), None)
    if remote is not None:
        return f"$ref {remote[:80]!r} points outside the schema: only local references (#...) are allowed"
    return None


def _remote_refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def validate(instance: Any, schema: Mapping[str, Any]) -> str | None:
    """None when `instance` satisfies `schema`, else the first reason it does not (fed back to the model)."""
    import jsonschema
    from referencing.exceptions import Unresolvable

    try:
        error = jsonschema.exceptions.best_match(_bounded()(schema).iter_errors(instance))
    except (Unresolvable, jsonschema.exceptions.SchemaError) as exc:
        return f"the schema could not be applied: {str(exc)[:200]}"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{f'at {where}: ' if where else ''}{error.message[:300]}"
