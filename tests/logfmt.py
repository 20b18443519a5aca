"""Reads the gateway's text-format log lines back into fields, by the rule service/telemetry/logs.py documents
(a bare value is a string unless it reads as a JSON number, true, false or null; a quoted one is JSON)."""

from __future__ import annotations

import json
import re
from typing import Any

_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?=\s|$)')
_LITERAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false|null")
_HEAD = re.compile(r"(?P<time>\S+) (?P<level>[A-Z]+) (?P<logger>\S+) (?P<message>\S+)(?P<rest>.*)")


def parse_line(line: str) -> dict[str, Any]:
    """`time LEVEL logger message k=v ...` → {"time", "level", "logger", "message", k: v, ...}. Every byte after
    the message must belong to a pair: anything else fails, so a forged or split line cannot pass."""
    head = _HEAD.fullmatch(line)
    assert head is not None, f"not a text log line: {line!r}"
    out: dict[str, Any] = {k: head.group(k) for k in ("time", "level", "logger", "message")}
    rest, pos = head.group("rest"), 0
    while pos < len(rest):
        assert rest[pos] == " ", f"unexpected text at {pos}: {rest[pos:pos + 40]!r}"
        pair = _PAIR.match(rest, pos + 1)
        assert pair is not None, f"not key=value at {pos}: {rest[pos:pos + 40]!r}"
        key, raw = pair.groups()
        assert key not in out, f"field {key} twice"
        out[key] = json.loads(raw) if raw.startswith('"') or _LITERAL.fullmatch(raw) else raw
        pos = pair.end()
    return out


def request_lines(text: str) -> list[dict[str, Any]]:
    """Every `jumpgate.request` line of a process's output, parsed. Lines end at "\n" only, as log shippers
    read them (str.splitlines would also split inside a quoted U+2028)."""
    return [parse_line(line) for line in text.split("\n") if " jumpgate.request request" in line]
