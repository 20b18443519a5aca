"""A deterministic string that fully matches a regular expression (TGI ``grammar: {type: regex}`` and JSON
Schema ``pattern``), built by walking the pattern's parse tree from Python's own ``re`` parser.

Repeats take their minimum count plus up to two more, branches and classes are picked by the PRNG, anchors
and lookarounds add nothing. The result is checked with ``re.fullmatch``; None means the pattern uses
something this walk cannot satisfy (the caller then falls back to another answer).
"""

from __future__ import annotations

import random
import re

# Python's own regex parser (private, but the same code `re.compile` runs; the project needs Python >= 3.11).
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

_CATEGORY_CHAR = {"CATEGORY_DIGIT": "7", "CATEGORY_NOT_DIGIT": "a", "CATEGORY_SPACE": " ",
                  "CATEGORY_NOT_SPACE": "b", "CATEGORY_WORD": "w", "CATEGORY_NOT_WORD": "-"}
MAX_LENGTH = 2000


def sample(pattern: str, rng: random.Random) -> str | None:
    try:
        tree = sre_parse.parse(pattern)
        text = _walk(tree, rng, {})
    except (re.error, RecursionError, ValueError, OverflowError):
        return None
    if len(text) > MAX_LENGTH:
        return None
    return text if re.fullmatch(pattern, text) else None


def _walk(items: Any, rng: random.Random, groups: dict[int, str]) -> str:
    return "".join(_node(op, av, rng, groups) for op, av in items)


def _node(op: Any, av: Any, rng: random.Random, groups: dict[int, str]) -> str:
    name = str(op)
    if name == "LITERAL":
        return chr(av)
    if name == "NOT_LITERAL":
        return "a" if av != ord("a") else "b"
    if name == "ANY":
        return "x"
    if name == "IN":
        return _in(av, rng)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, high, sub = av
        high = low + 2 if high == sre_constants.MAXREPEAT else high
        return "".join(_walk(sub, rng, groups) for _ in range(rng.randint(low, max(low, min(high, low + 2)))))
    if name == "SUBPATTERN":
        group, _add, _del, sub = av
        text = _walk(sub, rng, groups)
        if group is not None:
            groups[group] = text
        return text
    if name == "BRANCH":
        options = av[1]
        return _walk(options[rng.randrange(len(options))], rng, groups)
    if name == "GROUPREF":
        return groups.get(av, "")
    if name == "ATOMIC_GROUP":
        return _walk(av, rng, groups)
    if name in ("AT", "ASSERT", "ASSERT_NOT"):
        return ""
    raise ValueError(f"unsupported regex construct {name}")


def _in(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    if items and str(items[0][0]) == "NEGATE":
        excluded = {chr(av) for op, av in items[1:] if str(op) == "LITERAL"}
        return next(c for c in "xyzab0" if c not in excluded)
    op, av = items[rng.randrange(len(items))]
    name = str(op)
    if name == "LITERAL":
        return chr(av)
    if name == "RANGE":
        return chr(rng.randint(av[0], av[1]))
    if name == "CATEGORY":
        return _CATEGORY_CHAR.get(str(av), "a")
    raise ValueError(f"unsupported class item {name}")
