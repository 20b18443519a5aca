"""`jumpgate check-config`: what it prints and its exit code."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from service.config.check import run_check_config

SCHEMAS = ("tgi", "lmi", "neuron", "jumpstart", "text2text", "openai")

GOOD = """\
aws:
  region: us-east-1
  runtime_url: http://127.0.0.1:8081
endpoints:
  llama3-8b-g5:
    endpoint_name: my-llama3-8b
    schema: tgi
    instance_type: ml.g5.2xlarge
    context_length: 8192
    chat_template: llama3
  llama3-8b-inf2:
    endpoint_name: my-llama3-8b-inf2
    schema: neuron
    instance_type: ml.inf2.24xlarge
    instance_count: 2
    price_per_hour: 7.5
    max_concurrency: 4
models:
  llama3-8b:
    targets:
      - {endpoint: llama3-8b-g5, weight: 3}
      - {endpoint: llama3-8b-inf2, weight: 1}
    defaults: {max_new_tokens: 128, temperature: 0.5}
  llama3-8b-lenient:
    targets: [{endpoint: llama3-8b-g5}]
    unsupported_params: drop
"""

BAD = """\
aws: {region: us-east-1}
endpoints:
  llama3-8b-g5: {endpoint_name: my-llama3-8b, schema: tgx, instance_type: ml.g5.2xlarge}
  llama3-8b-inf2: {schema: neuron, instance_type: ml.inf2.24xlarge}
models:
  llama3-8b:
    targets:
      - {endpoint: llama3-8b-g5, weight: -1}
      - {endpoint: llama3-8b-gone}
"""


def run(tmp_path: Path, text: str | None) -> tuple[int, str, str, Path]:
    path = tmp_path / "jumpgate.yaml"
    if text is not None:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = run_check_config(str(path), out=out, err=err, schemas=SCHEMAS)
    return code, out.getvalue(), err.getvalue(), path


def test_valid_config_prints_resolution(tmp_path: Path) -> None:
    code, out, err, path = run(tmp_path, GOOD)
    assert (code, err) == (0, "")
    expected_lines = [
        f"{path}: OK",
        "aws: region us-east-1",
        "  runtime URL: http://127.0.0.1:8081",
        "  llama3-8b-g5: SageMaker endpoint my-llama3-8b, schema tgi",
        "    instances: ml.g5.2xlarge x 1 (accelerator gpu)",
        "    price: $1.5150/h per instance (table), $1.5150/h for the endpoint",
        "    context_length: 8192, max_concurrency: 32, timeout: 70s",
        "  llama3-8b-inf2: SageMaker endpoint my-llama3-8b-inf2, schema neuron",
        "    instances: ml.inf2.24xlarge x 2 (accelerator inf2)",
        "    price: $7.5000/h per instance (override), $15.0000/h for the endpoint",
        "    context_length: not set, max_concurrency: 4, timeout: 70s",
        "    targets: llama3-8b-g5 (weight 3), llama3-8b-inf2 (weight 1)",
        "    defaults: max_new_tokens=128, temperature=0.5",
        "    unsupported_params: reject",
        "    defaults: max_new_tokens=256 (gateway default)",
        "    unsupported_params: drop",
    ]
    lines = out.splitlines()
    for line in expected_lines:
        assert line in lines


def test_default_runtime_url_is_printed(tmp_path: Path) -> None:
    code, out, _, _ = run(tmp_path, GOOD.replace("  runtime_url: http://127.0.0.1:8081\n", ""))
    assert code == 0
    assert "  runtime URL: https://runtime.sagemaker.us-east-1.amazonaws.com" in out.splitlines()


def test_invalid_config_lists_every_problem(tmp_path: Path) -> None:
    code, out, err, path = run(tmp_path, BAD)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{path}: ") for line in lines)
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {"endpoints.llama3-8b-g5.schema", "endpoints.llama3-8b-inf2.endpoint_name",
                    "models.llama3-8b.targets[0].weight", "models.llama3-8b.targets[1].endpoint"}
    assert f"{path}: endpoints.llama3-8b-inf2.endpoint_name: required" in lines


@pytest.mark.parametrize(("text", "key"), [
    (None, "(file)"),
    ("aws: [\n", "line 2, column 1"),
])
def test_unreadable_config(tmp_path: Path, text: str | None, key: str) -> None:
    code, out, err, path = run(tmp_path, text)
    assert (code, out) == (1, "")
    assert err.startswith(f"{path}: {key}: ")


def test_defaults_to_process_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert run_check_config(str(path), schemas=SCHEMAS) == 0
    assert "llama3-8b-lenient" in capsys.readouterr().out
    assert run_check_config(str(tmp_path / "missing.yaml"), schemas=SCHEMAS) == 1
    assert "no such file" in capsys.readouterr().err
