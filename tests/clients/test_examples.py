"""The runnable examples in clients/examples/, run as a user would (a subprocess) against the live gateway."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import Sim


def run(args: list[str], env: dict[str, str] | None = None) -> str:
    # No proxy may sit between the example and the loopback gateway; the example must not need the network.
    full_env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **(env or {})}
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=full_env, check=False)
    assert done.returncode == 0, f"{args} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + ": "):
            return line.removeprefix(name + ": ")
    raise AssertionError(f"no {name!r} line in:\n{output}")


def test_openai_sdk_example(examples_dir: Path, gateway_url: str, sim: Sim) -> None:
    out = run([sys.executable, str(examples_dir / "openai_sdk.py"), "--url", gateway_url, "--model", "llama3-8b"])
    assert field(out, "endpoint") == "llama3-8b-g5"
    assert field(out, "answer").strip()
    assert field(out, "streamed").strip()
    # sampled (top_k) with the simulator's next seed: 32 tokens (max_tokens) or fewer when it stopped on its own
    streamed = re.fullmatch(r"(\d+) completion tokens", field(out, "streamed usage"))
    assert streamed is not None and 1 <= int(streamed.group(1)) <= 32
    assert "llama2-13b-neuron" in field(out, "models").split(", ")
    bodies = [r["body_json"] for r in sim.requests()]
    assert len(bodies) == 2
    assert bodies[1]["parameters"]["top_k"] == 40  # extra_body reached the TGI payload


def test_langchain_example_reads_url_from_environment(examples_dir: Path, gateway_url: str, sim: Sim) -> None:
    out = run([sys.executable, str(examples_dir / "langchain_chat.py"), "--model", "llama2-13b-neuron"],
              env={"JUMPGATE_URL": gateway_url, "LANGCHAIN_TRACING_V2": "false", "LANGSMITH_TRACING": "false"})
    assert field(out, "answer").strip()
    assert field(out, "usage").endswith("completion tokens")
    assert field(out, "usage").split()[0].isdigit()
    streamed = re.search(r"^streamed (\d+) chunks: (.+)$", out, re.MULTILINE)
    assert streamed is not None, out
    assert int(streamed.group(1)) >= 2 and streamed.group(2).strip()
    requests = sim.requests()
    assert len(requests) == 2
    assert all(r["endpoint"] == "jumpgate-demo-neuron-llama2-13b" for r in requests)
    assert all(r["body_json"]["parameters"]["top_k"] == 40 for r in requests)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_example(examples_dir: Path, gateway_url: str, sim: Sim) -> None:
    out = run(["bash", str(examples_dir / "curl.sh"), gateway_url, "flan-t5-xl"])
    assert "HTTP/1.1 200" in out
    assert "x-jumpgate-endpoint: flan-t5-xl-g5" in out.lower()
    assert out.count("data: [DONE]") == 1
    assert '"generations"' in out
    assert '"object":"list"' in out.replace(" ", "")
    assert len(sim.requests()) == 3
