"""Fixtures for the deployment tests: the gateway started exactly as the image's ENTRYPOINT starts it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.deploy import dockerfile
from tests.procs import ROOT, Proc, free_port


def _serve_help() -> str:
    done = subprocess.run([sys.executable, "-m", "service", "serve", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout


@pytest.fixture(scope="session")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """`jumpgate serve` with the Dockerfile's ENTRYPOINT arguments, on a free port instead of the image's.
    No config, as in the image by default: the demo, with its embedded simulator."""
    argv = dockerfile.entrypoint(dockerfile.load())
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    assert argv[0] == "jumpgate"
    if "--allow-unauthenticated" in _serve_help():
        # A gateway that refuses a non-loopback bind without API keys: run the demo as `docker run IMAGE
        # --allow-unauthenticated` would (arguments after the image name are appended to the entrypoint).
        argv.append("--allow-unauthenticated")
    proc = Proc(["-m", "service", *argv[1:]], port, "/healthz", tmp_path_factory.mktemp("image") / "serve.log",
                env={"JUMPGATE_CONFIG": ""})
    yield proc
    proc.stop()
