"""The `jumpgate` command as a user meets it, as real processes: help that names every default and variable, a
port in use told in one line, `make serve PORT=`, a standalone simulator that says what it serves, the demo
config pointed at it, and the demo's banner and text request logs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from service import cli
from service.config.demo import DEMO_MODELS
from service.simulator.model import DEMO_ENDPOINTS
from tests.logfmt import request_lines
from tests.procs import ROOT, Proc, free_port, start_gateway

pytestmark = pytest.mark.e2e

#: the environment of a user who set none of jumpgate's variables
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("JUMPGATE_") and k not in ("PORT", "SIM_PORT")}


def jumpgate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, env=CLEAN_ENV, capture_output=True,
                          text=True, timeout=timeout, check=False)


def commands() -> dict[str, list[tuple[str, str]]]:
    """Each subcommand → (option, help) of each of its flags, from the parser the console script uses."""
    sub = next(a.choices for a in cli._parser()._actions if isinstance(a.choices, dict))
    return {name: [(a.option_strings[-1], a.help or "") for a in parser._actions
                   if a.option_strings and a.dest != "help"]
            for name, parser in sub.items()}


def test_every_flag_of_every_command_has_a_description_a_default_and_a_variable() -> None:
    found = commands()
    assert set(found) == {"serve", "simulate", "check-config", "discover", "demo-config"}
    assert {o for o, _ in found["serve"]} == {"--config", "--host", "--port", "--workers", "--allow-unauthenticated"}
    for name, flags in found.items():
        shown = " ".join(jumpgate(name, "--help").stdout.split())
        for option, help_text in flags:
            described = re.fullmatch(r"(?P<what>.{12,}) \(default: (?P<default>.+); env: (?P<env>[A-Z_]+.*)\)",
                                     help_text)
            assert described, f"{name} {option}: {help_text!r}"
            assert option in shown and " ".join(help_text.split()) in shown, f"{name} {option} not in --help"
    serve = dict(found["serve"])
    assert "env: JUMPGATE_CONFIG" in serve["--config"] and "default: 8080;" in serve["--port"]
    assert "env: JUMPGATE_PORT" in serve["--port"]


def test_a_variable_sets_a_flag_in_a_real_process(tmp_path: Path) -> None:
    url = "http://127.0.0.1:18181"
    done = subprocess.run([sys.executable, "-m", "service", "demo-config"], cwd=ROOT, capture_output=True, text=True,
                          env={**CLEAN_ENV, "JUMPGATE_SIMULATOR_URL": url}, timeout=60, check=True)
    assert f"runtime_url: {url}\n" in done.stdout


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture(scope="module")
def demo_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "jumpgate.yaml"
    path.write_text(jumpgate("demo-config").stdout)
    return path


@pytest.mark.parametrize("command", ["serve", "serve --config", "serve --config --workers 2", "simulate"])
def test_a_port_in_use_is_one_line_naming_it_and_how_to_choose_another(command: str, taken_port: int,
                                                                      demo_yaml: Path) -> None:
    args = [*command.replace("--config", f"--config {demo_yaml}").split(), "--port", str(taken_port)]
    done = jumpgate(*args)
    assert done.returncode != 0
    assert done.stdout == ""  # no banner: nothing is served
    (line,) = done.stderr.strip().splitlines()
    assert f"jumpgate {args[0]}: port {taken_port} is already in use on 127.0.0.1" in line
    assert "--port N" in line and ("make serve PORT=N" if args[0] == "serve" else "make simulate SIM_PORT=N") in line


def test_a_config_the_simulator_cannot_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("endpoints: [1, 2]\n")
    for path in (tmp_path / "missing.yaml", tmp_path / "bad.yaml"):
        done = jumpgate("simulate", "--config", str(path), "--port", str(free_port()))
        assert done.returncode == 1 and done.stdout == ""
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"jumpgate simulate: cannot simulate the endpoints of {path}: ")


def make_ready() -> str:
    """The make binary, when the venv `make serve` uses is the one running these tests and is up to date
    (otherwise make would install packages: not a test's business)."""
    binary = shutil.which("make")
    venv = ROOT / ".venv"
    if binary is None or Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("the tests do not run from the project's .venv, which `make serve` uses")
    if subprocess.run([binary, "-q", ".venv/.runtime-installed"], cwd=ROOT, env=CLEAN_ENV, check=False).returncode:
        pytest.skip("the project's .venv is not up to date for `make serve`")
    return binary


def test_make_serve_port_chooses_the_port(tmp_path: Path) -> None:
    binary, port = make_ready(), free_port()
    log = (tmp_path / "make-serve.log").open("wb")
    proc = subprocess.Popen([binary, "-s", "serve", f"PORT={port}"], cwd=ROOT, env=CLEAN_ENV, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while answer is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200, (tmp_path / "make-serve.log").read_text()
        assert {m["id"] for m in answer.json()["data"]} == set(DEMO_MODELS)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the gateway it started: the group this test created
        proc.wait(30)
        log.close()
    assert f"on http://127.0.0.1:{port} " in (tmp_path / "make-serve.log").read_text()


def test_make_serve_on_a_port_in_use_says_so(taken_port: int) -> None:
    done = subprocess.run([make_ready(), "-s", "serve", f"PORT={taken_port}"], cwd=ROOT, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"jumpgate serve: port {taken_port} is already in use" in done.stderr
    assert "make serve PORT=N" in done.stderr


def test_simulate_says_where_and_what_and_the_demo_config_points_a_gateway_at_it(tmp_path: Path) -> None:
    port = free_port()
    sim = Proc(["-m", "service", "simulate", "--port", str(port), "--latency", "zero"], port, "/ping",
               tmp_path / "simulate.log", env={"JUMPGATE_SIMULATOR_CONFIG": ""})
    try:
        banner = sim.output_with("Ctrl-C stops.")
        assert f"listening on http://127.0.0.1:{port}, latency: zero" in banner
        assert all(name in banner for name in DEMO_ENDPOINTS)
        assert f"jumpgate demo-config --runtime-url http://127.0.0.1:{port} > jumpgate.yaml" in banner
        config = tmp_path / "jumpgate.yaml"
        config.write_text(jumpgate("demo-config", "--runtime-url", sim.url).stdout)
        assert jumpgate("check-config", str(config)).returncode == 0
        gw = start_gateway(tmp_path, config)
        try:
            answer_every_model_and_log_it(gw)
        finally:
            gw.stop()
    finally:
        sim.stop()


def answer_every_model_and_log_it(gw: Proc) -> None:
    """Every demo model answers through the OpenAI SDK; the text-format request line of each carries the
    fields the response headers report."""
    with OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=30) as client:
        for model in DEMO_MODELS:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=8,
                extra_headers={"x-request-id": f"cli-{model}"})
            answer = raw.parse()
            assert answer.choices[0].message.content and answer.usage is not None
            (line,) = [r for r in request_lines(gw.output_with(f"request_id=cli-{model} "))
                       if r["request_id"] == f"cli-{model}"]
            assert (line["model"], line["endpoint"], line["status"]) == (model, raw.headers["x-jumpgate-endpoint"],
                                                                          200)
            assert (line["prompt_tokens"], line["completion_tokens"]) == (answer.usage.prompt_tokens,
                                                                          answer.usage.completion_tokens)
            assert line["token_source"] == raw.headers["x-jumpgate-token-source"]
            # the header carries 10 decimals (service/api/render.py), the log line every digit
            assert line["cost_usd"] == pytest.approx(float(raw.headers["x-jumpgate-cost-usd"]), abs=5.1e-11)


def test_the_demo_banner_and_its_sdk_example_work_as_printed(tmp_path: Path) -> None:
    port = free_port()
    demo = Proc(["-m", "service", "serve", "--port", str(port)], port, "/healthz", tmp_path / "demo.log",
                env={"JUMPGATE_CONFIG": ""})
    try:
        banner = demo.output_with("Ctrl-C stops.")
        assert f"jumpgate is serving the demo config on http://127.0.0.1:{port} " in banner
        assert "pip install openai" in banner
        example = banner[banner.index('python -c "'):banner.index('content)"') + len('content)"')]
        done = subprocess.run(["bash", "-c", sys.executable + example.removeprefix("python")], capture_output=True,
                              text=True, timeout=60, check=False, env=CLEAN_ENV)  # the test venv has openai
        assert done.returncode == 0 and done.stdout.strip(), done.stderr
        lines = request_lines(demo.output_with(" jumpgate.request request "))
        assert [(r["model"], r["status"], r["api"]) for r in lines] == [("llama2-13b-neuron", 200, "chat")]
        assert lines[0]["endpoint"] == "llama2-13b-inf2" and lines[0]["completion_tokens"] > 0
    finally:
        assert demo.stop() == 0  # SIGTERM: drained, then a clean exit
