"""Config problems (file, key, why), the key path of a pydantic error location, and `${VAR}` expansion."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.why}"


class ConfigError(Exception):
    """Every problem found in one config file; str() lists them one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def key_path(loc: tuple[str | int, ...]) -> str:
    """('models', 'm', 'targets', 0, 'weight') → 'models.m.targets[0].weight'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# --- ${VAR} expansion -------------------------------------------------------------------------------
# `$${` is a literal `${`; `${VAR:-default}` uses the default when VAR is unset or empty (as in sh).
_VAR = re.compile(r"\$\$(?=\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(data: Any, env: Mapping[str, str], source: str) -> tuple[Any, list[Problem]]:
    """Copy of `data` with `${VAR}` expanded in every string value, and a problem per unset variable."""
    problems: list[Problem] = []

    def expand(value: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: expand(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [expand(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        unset = [m[1] for m in _VAR.finditer(value) if m[1] and m[2] is None and m[1] not in env]
        problems.extend(Problem(source, key_path(loc), f"environment variable {name} is not set "
                                f"(set it, or write ${{{name}:-default}})") for name in unset)
        return _VAR.sub(lambda m: _substitute(m, env), value)

    return expand(data, ()), problems


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    name, default = match[1], match[2]
    if name is None:
        return "$"  # the `$${` escape
    if env.get(name):
        return env[name]
    if default is not None:
        return default
    return "" if name in env else match[0]  # unset: left as written, and reported by expand_env
