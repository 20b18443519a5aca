"""Reading tool calls and JSON out of a model's text (the inverse of service/prompts/tools.py).

Tool calls, after Meta's reference parser (openai-surface.md 1.6): strip a leading `<|python_tag|>` and trailing
end tokens (TGI and vLLM skip special tokens in final texts, so the tag may or may not be there); then try
`<function=NAME>{...}</function>`, then a JSON object with `name` and `parameters` (or `arguments`; a list of such
objects is several calls), then a Python list of calls with keyword arguments that are literals (parsed with
`ast`, never evaluated). Anything else is not a call. Markdown code fences around the body are dropped, as models
add them. Parsing never raises: hostile or broken text is "not a call".

`call_prefix` decides, from the first characters of a stream, whether the text may become a call: `{`, `[`,
`<function=` or `<|python_tag|>` start a candidate; anything else is text. It waits while the text is still too
short to tell.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass
from typing import Any

PYTHON_TAG = "<|python_tag|>"
END_TOKENS = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")
_OPENERS = ("{", "[", "<function=", PYTHON_TAG)
_FUNCTION = re.compile(r"<function=([A-Za-z0-9_.-]{1,64})>(.*?)</function>", re.S)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)
_DECODER = json.JSONDecoder()
MAX_PARSE_CHARS = 200_000  # longer text is not parsed as a call (bounded work for hostile output)


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: Any  # the parsed arguments: a dict when the model followed the format


def clean(text: str) -> str:
    body = text.strip()
    if body.startswith(PYTHON_TAG):
        body = body[len(PYTHON_TAG):].lstrip()
    changed = True
    while changed:
        changed = False
        for token in END_TOKENS:
            if body.endswith(token):
                body, changed = body[: -len(token)].rstrip(), True
    fenced = _FENCE.match(body)
    return fenced.group(1).strip() if fenced else body


def parse_calls(text: str) -> list[ParsedCall] | None:
    """The calls `text` makes, or None when it is not a call."""
    if len(text) > MAX_PARSE_CHARS:
        return None
    body = clean(text)
    if not body:
        return None
    for parse in (_function_calls, _json_calls, _pythonic_calls):
        calls = parse(body)
        if calls:
            return calls
    return None


def _function_calls(body: str) -> list[ParsedCall] | None:
    if not body.startswith("<function="):
        return None
    matches = list(_FUNCTION.finditer(body))
    if not matches or _FUNCTION.sub("", body).strip():
        return None
    calls = []
    for m in matches:
        try:
            calls.append(ParsedCall(m.group(1), json.loads(m.group(2)) if m.group(2).strip() else {}))
        except ValueError:
            return None
    return calls


def _json_calls(body: str) -> list[ParsedCall] | None:
    if body[0] not in "{[":
        return None
    try:
        value, end = _DECODER.raw_decode(body)
    except ValueError:
        return None
    if body[end:].strip():
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_json_call(item) for item in items]
    return None if not calls or None in calls else [c for c in calls if c is not None]


def _json_call(item: Any) -> ParsedCall | None:
    if not isinstance(item, dict):
        return None
    inner = item.get("function")
    function: dict[str, Any] = inner if isinstance(inner, dict) else item
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    args = function.get("parameters", function.get("arguments", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    return ParsedCall(name, args)


def _pythonic_calls(body: str) -> list[ParsedCall] | None:
    if not body.startswith("["):
        return None
    renamed = _safe_names(body)
    if renamed is None:
        return None
    source, names = renamed
    try:
        tree = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree, ast.List) or not tree.elts:
        return None
    calls = []
    for node in tree.elts:
        if (not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args
                or any(k.arg is None for k in node.keywords)):  # `**kwargs` is no argument a schema names
            return None
        try:
            args = {names.get(k.arg, k.arg): ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            return None
        calls.append(ParsedCall(names.get(node.func.id, node.func.id), args))
    return calls


def _safe_names(body: str) -> tuple[str, dict[str, str]] | None:
    """`body` with every call name and keyword name replaced by a placeholder identifier, and the placeholders'
    original names. Function and parameter names are JSON Schema / OpenAI names, not Python identifiers: `or`,
    `class` and `get-weather` are valid tool or parameter names that `ast` cannot read. Literals are untouched
    (tokenize tells names from text inside strings)."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(body).readline)
                  if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER)]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    starts = _line_starts(body)
    spans: list[tuple[int, int, str]] = []
    depth, i = 0, 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.NAME and i > 0 and tokens[i - 1].string in "[(,":
            j = _name_run(tokens, i)
            follows = tokens[j].string if j < len(tokens) else ""
            if (depth == 1 and follows == "(") or (depth == 2 and follows == "="):
                begin, end = _offset(starts, tok.start), _offset(starts, tokens[j - 1].end)
                spans.append((begin, end, body[begin:end]))
                i = j
                continue
        depth += {"[": 1, "(": 1, "{": 1, "]": -1, ")": -1, "}": -1}.get(tok.string, 0) if tok.type == tokenize.OP \
            else 0
        i += 1
    names: dict[str, str] = {}
    for k, (begin, end, original) in enumerate(reversed(spans)):
        placeholder = f"_jg_name_{k}"
        names[placeholder] = original
        body = body[:begin] + placeholder + body[end:]
    return body, names


def _name_run(tokens: list[tokenize.TokenInfo], i: int) -> int:
    """The index after a name written without spaces, hyphens and dots included (`get-weather`)."""
    j = i + 1
    while (j + 1 < len(tokens) and tokens[j].string in "-." and tokens[j].type == tokenize.OP
           and tokens[j].start == tokens[j - 1].end and tokens[j + 1].start == tokens[j].end
           and tokens[j + 1].type in (tokenize.NAME, tokenize.NUMBER)):
        j += 2
    return j


def _line_starts(text: str) -> list[int]:
    starts, at = [0, 0], 0
    for line in text.splitlines(keepends=True):
        at += len(line)
        starts.append(at)
    return starts


def _offset(starts: list[int], position: tuple[int, int]) -> int:
    return starts[position[0]] + position[1]


def call_prefix(text: str) -> bool | None:
    """True: the text may be a call (buffer it); False: it is text; None: too short to tell yet."""
    head = text.lstrip()
    if not head:
        return None
    if head.startswith("```"):
        rest = head[3:].lstrip("json").lstrip()
        return None if not rest else call_prefix(rest)
    for opener in _OPENERS:
        if head.startswith(opener):
            return True
        if opener.startswith(head):
            return None
    return False


def extract_json(text: str) -> tuple[Any, str | None]:
    """The JSON value a JSON answer holds (code fences and prose around one object dropped), or why none."""
    if len(text) > MAX_PARSE_CHARS:
        return None, f"the answer is longer than {MAX_PARSE_CHARS} characters"
    body = clean(text)
    start = body.find("{")
    if start < 0:
        return None, "the answer holds no JSON object"
    try:
        value, _ = _DECODER.raw_decode(body, start)
    except ValueError as exc:
        return None, f"the answer is not valid JSON: {str(exc)[:200]}"
    return value, None
