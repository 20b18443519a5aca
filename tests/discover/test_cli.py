"""`jumpgate discover` as a process against the stock moto server, its output fed to `jumpgate check-config`."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.discover.scan import run_discover
from tests.discover.conftest import REGION, Variant, deploy, reset, sagemaker, start_moto
from tests.procs import ROOT

ECR = "763104351884.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture(scope="module")
def moto_url(aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Stock moto: only instance types from its own list (ml.g4dn, ml.inf1, ...), no launcher patch.
    server = start_moto(tmp_path_factory.mktemp("moto-stock"), "moto.server")
    reset(server.url)
    client = sagemaker(server.url)
    deploy(client, "llama3-tgi", Variant(f"{ECR}/huggingface-pytorch-tgi-inference:2.3.0-tgi2.2.0-gpu-py310",
                                         "ml.g4dn.12xlarge", env={"MAX_TOTAL_TOKENS": "4096"}))
    deploy(client, "meta-textgeneration-llama-2-7b-f", Variant(f"{ECR}/pytorch-inference:2.0.1-gpu-py310",
                                                               "ml.g4dn.12xlarge", count=2))
    deploy(client, "mystery", Variant("123456789012.dkr.ecr.us-east-1.amazonaws.com/mystery:1", "ml.g4dn.xlarge"))
    yield server.url
    server.stop()


def jumpgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_discover_output_passes_check_config(moto_url: str, tmp_path: Path) -> None:
    done = jumpgate("discover", "--endpoint-url", moto_url, "--region", REGION)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# jumpgate config written by `jumpgate discover` for region us-east-1")
    assert '# SKIPPED endpoint "mystery" variant "AllTraffic": image' in done.stdout
    path = tmp_path / "discovered.yaml"
    path.write_text(done.stdout)
    checked = jumpgate("check-config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "llama3-tgi: SageMaker endpoint llama3-tgi, schema tgi" in checked.stdout
    assert "schema jumpstart" in checked.stdout and "custom_attributes: 'accept_eula=true'" in checked.stdout


def test_an_empty_region_prints_only_comments_and_exits_1(moto_url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_discover("eu-west-1", endpoint_url=moto_url, out=out, err=err) == 1
    assert all(line.startswith("#") for line in out.getvalue().splitlines())
    assert "0 SageMaker endpoints listed" in out.getvalue()
    assert "no endpoint could be turned into a config" in err.getvalue()


def test_without_a_region_it_says_how_to_give_one(moto_url: str) -> None:
    err = io.StringIO()
    assert run_discover(None, endpoint_url=moto_url, out=io.StringIO(), err=err) == 2
    assert "pass --region" in err.getvalue()


def test_an_unknown_profile_is_reported(moto_url: str) -> None:
    err = io.StringIO()
    assert run_discover(REGION, "no-such-profile", moto_url, out=io.StringIO(), err=err) == 2
    assert "no-such-profile" in err.getvalue()


def test_an_unreachable_api_is_reported_not_raised(aws_env: dict[str, str]) -> None:
    from tests.procs import free_port

    err = io.StringIO()
    assert run_discover(REGION, endpoint_url=f"http://127.0.0.1:{free_port()}", out=io.StringIO(), err=err) == 1
    assert "cannot list SageMaker endpoints in us-east-1" in err.getvalue()
