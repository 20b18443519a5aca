"""A small Dockerfile reader for the deployment tests: instructions, stages, and the values the Kubernetes and
ECS manifests must agree with (port, user id, entrypoint, healthcheck)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.procs import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile → instructions, with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def exec_form(ins: Instruction) -> list[str]:
    value = json.loads(ins.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{ins.keyword} is not exec form"
    return value


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def entrypoint(instructions: list[Instruction]) -> list[str]:
    return exec_form(only(instructions, "ENTRYPOINT"))


def healthcheck(instructions: list[Instruction]) -> tuple[str, list[str]]:
    options, _, command = only(instructions, "HEALTHCHECK").args.partition("CMD ")
    return options, exec_form(Instruction("CMD", command))


def port(instructions: list[Instruction]) -> int:
    argv = entrypoint(instructions)
    assert argv[argv.index("--port") + 1] == only(instructions, "EXPOSE").args
    return int(only(instructions, "EXPOSE").args)


def user_id(instructions: list[Instruction]) -> int:
    users = [ins.args for ins in stages(instructions)[-1] if ins.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    return int(users[-1].split(":")[0])


def load() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())
