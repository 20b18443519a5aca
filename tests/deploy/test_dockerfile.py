"""The Dockerfile and .dockerignore: hadolint clean, and the properties deployments rely on.

No container engine runs on these machines, so the image is not built here. What is checked: the lint, the
structure (multi-stage, slim base, runtime dependencies only, non-root, exec-form entrypoint, healthcheck),
that the entrypoint's arguments and the healthcheck's command work against a real `jumpgate serve`, and
that the build context keeps what the COPY lines need and drops the rest.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile import (
    DOCKERFILE,
    Instruction,
    entrypoint,
    healthcheck,
    load,
    port,
    stages,
    user_id,
)
from tests.procs import ROOT, Proc, free_port

HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return load()


def lint(path: Path) -> list[dict[str, object]]:
    done = subprocess.run([HADOLINT, "--format", "json", "--no-fail", "--disable-ignore-pragma", str(path)],
                          capture_output=True, text=True, timeout=30, check=True)
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return findings


def test_hadolint_finds_nothing() -> None:
    assert lint(DOCKERFILE) == []


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\nCMD jumpgate serve\n")
    codes = {f["code"] for f in lint(bad)}
    assert {"DL3006", "DL3008", "DL3025"} <= codes


def test_multi_stage_on_the_slim_python_base(dockerfile: list[Instruction]) -> None:
    froms = [ins.args.split() for ins in dockerfile if ins.keyword == "FROM"]
    assert len(froms) >= 2
    assert all(f[0] == "python:3.11-slim" for f in froms)
    build_stage = froms[0][2]
    final = stages(dockerfile)[-1]
    copies = [ins.args for ins in final if ins.keyword == "COPY"]
    assert copies and all(c.startswith(f"--from={build_stage} ") for c in copies), "runtime copies only the build"
    assert not [ins for ins in final if ins.keyword == "RUN" and "pip" in ins.args], "no installs in the runtime"


def test_runtime_dependencies_only(dockerfile: list[Instruction]) -> None:
    installs = [ins.args for ins in dockerfile if ins.keyword == "RUN" and "pip install" in ins.args]
    assert installs
    for cmd in installs:
        assert "[" not in cmd and "-e " not in cmd, f"extras or editable install in the image: {cmd}"


def test_runs_as_a_numeric_non_root_user(dockerfile: list[Instruction]) -> None:
    # numeric, so Kubernetes can enforce runAsNonRoot without resolving names
    assert user_id(dockerfile) >= 1000


def test_exec_form_entrypoint_serves_on_all_interfaces(dockerfile: list[Instruction]) -> None:
    argv = entrypoint(dockerfile)
    assert argv[:2] == ["jumpgate", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert "--config" not in argv, "the config comes from JUMPGATE_CONFIG or appended arguments"
    assert not [ins for ins in dockerfile if ins.keyword == "CMD"]


def test_healthcheck_probes_healthz_on_the_served_port(dockerfile: list[Instruction]) -> None:
    options, argv = healthcheck(dockerfile)
    assert f"http://127.0.0.1:{port(dockerfile)}/healthz" in " ".join(argv)
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)


def run_healthcheck(dockerfile: list[Instruction], on_port: int) -> int:
    """The HEALTHCHECK command as the container runtime runs it, aimed at `on_port` instead of the image's."""
    _, argv = healthcheck(dockerfile)
    assert argv[0] == "python"
    argv = [sys.executable, *(a.replace(f":{port(dockerfile)}/", f":{on_port}/") for a in argv[1:])]
    return subprocess.run(argv, timeout=10, check=False, capture_output=True).returncode


def test_healthcheck_passes_on_the_entrypoint_server_and_fails_without_it(dockerfile: list[Instruction],
                                                                          image_server: Proc) -> None:
    assert run_healthcheck(dockerfile, image_server.port) == 0
    assert run_healthcheck(dockerfile, free_port()) != 0


def context_files(ignore_text: str) -> set[str]:
    """The build context under .dockerignore's rules: the last matching pattern wins, `!` re-includes,
    a pattern matching a parent folder matches what is inside it, `**` spans folders."""
    patterns = [line.strip() for line in ignore_text.splitlines() if line.strip() and not line.startswith("#")]

    def segments_match(pattern: list[str], parts: list[str]) -> bool:
        """Docker's reading: `*` stays within one path segment, a `**` segment spans any number of them."""
        if not pattern:
            return not parts
        if pattern[0] == "**":
            return any(segments_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and segments_match(pattern[1:], parts[1:])

    def matches(pattern: str, path: str) -> bool:
        parts = path.split("/")  # a pattern that names a folder also names everything inside it
        return any(segments_match(pattern.split("/"), parts[:i]) for i in range(1, len(parts) + 1))

    kept = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules")]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
            excluded = False
            for pattern in patterns:
                if matches(pattern.lstrip("!"), rel):
                    excluded = not pattern.startswith("!")
            if not excluded:
                kept.add(rel)
    return kept


def test_dockerignore_keeps_what_copy_needs_and_nothing_else(dockerfile: list[Instruction]) -> None:
    kept = context_files((ROOT / ".dockerignore").read_text())
    sources = [ins.args.split()[:-1] for ins in dockerfile if ins.keyword == "COPY" and "--from" not in ins.args]
    for src in (s for group in sources for s in group):
        assert any(k == src or k.startswith(src.rstrip("/") + "/") for k in kept), f"COPY {src} would be empty"
    assert "service/cli.py" in kept and "clients/jumpgate_client/sync.py" in kept
    assert not [k for k in kept if k.startswith(("tests/", "deploy/", ".ci/"))]
    assert not [k for k in kept if "__pycache__" in k or k.endswith(".pyc")]
    assert {k.split("/")[0] for k in kept} <= {"pyproject.toml", "README.md", "service", "clients"}
