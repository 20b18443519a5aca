"""The processes a benchmark measures: the simulator, the gateway (one worker), optionally LiteLLM's proxy.

Also what the load needs from them: the exact TGI payloads and headers the gateway sends for the
benchmark's chat requests (read back from the simulator's recorder, so the direct requests are the
gateway's own), a SigV4 check of one direct request, and per-process RSS and CPU time from /proc.
"""

from __future__ import annotations

import base64
import os
import resource
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from service.config.demo import SIMULATOR_CREDENTIALS, demo_config_data
from tests import sigv4
from tests.bench.load import SigV4Headers
from tests.procs import Proc, free_port, start_gateway

MODEL = "llama3-8b"  # TGI endpoint llama3-8b-g5 in the demo config
ENDPOINT = "llama3-8b-g5"
TOKENS = 64
EMBEDDING_MODEL = "bge-large"  # TEI endpoint bge-large-tei-g5 in the demo config (1024 dimensions)
EMBEDDING_INPUTS = 32  # one TEI batch (--max-client-batch-size) per request
REGION = "us-east-1"
PROMPT = "Write one sentence about what an API gateway does."
# Headers the signer adds or the client derives; everything else recorded from the gateway is re-sent and signed.
NOT_COPIED = frozenset({"host", "x-amz-date", "authorization", "x-amz-security-token", "content-length"})
CLK_TCK = os.sysconf("SC_CLK_TCK")
LITELLM_START_S = 120.0  # its proxy imports a great deal before it listens


def embedding_body() -> bytes:
    """One TEI batch: EMBEDDING_INPUTS texts, base64 vectors (what the openai SDK asks for)."""
    return orjson.dumps({"model": EMBEDDING_MODEL, "encoding_format": "base64",
                         "input": [f"{PROMPT} (passage {i})" for i in range(EMBEDDING_INPUTS)]})


def chat_body(model: str = MODEL, *, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": TOKENS}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass(frozen=True)
class Upstream:
    """One direct SageMaker runtime call as the gateway makes it: URL, body, headers to sign."""

    url: str
    body: bytes
    headers: dict[str, str]

    def sign_spec(self) -> dict[str, Any]:
        return {"headers": self.headers, "access_key": SIMULATOR_CREDENTIALS["access_key_id"],
                "secret": SIMULATOR_CREDENTIALS["secret_access_key"], "region": REGION}


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        port = free_port()
        self.sim = Proc(["-m", "tests.bench.simulator", "--port", str(port)], port, "/ping",
                        tmp / f"simulator-{port}.log")
        self.config = tmp / "jumpgate.yaml"
        self.config.write_text(yaml.safe_dump(demo_config_data(self.sim.url)))
        try:
            self.gw = start_gateway(tmp, self.config, extra=["--workers", "1"])
        except Exception:
            self.sim.stop()
            raise
        self.litellm: Proc | None = None

    def start_traced(self, otlp_url: str, sample_rate: float) -> Proc:
        """A second gateway, the same config plus tracing (`sample_rate` of requests), exported to `otlp_url`. The
        exporter's queue holds a whole run, so the figure includes exporting every span, none dropped."""
        config = self.tmp / "jumpgate-traced.yaml"
        data = demo_config_data(self.sim.url)
        data["tracing"] = {"otlp_endpoint": otlp_url, "sample_rate": sample_rate}
        config.write_text(yaml.safe_dump(data))
        return start_gateway(self.tmp, config, extra=["--workers", "1"],
                             env={"OTEL_BSP_MAX_QUEUE_SIZE": "262144", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048"})

    def stop(self) -> None:
        for proc in (self.litellm, self.gw, self.sim):
            if proc is not None:
                proc.stop()

    def capture(self, *, stream: bool = False, path: str = "/v1/chat/completions",
                body: bytes | None = None) -> Upstream:
        """Send one request through the gateway and return the upstream call it made."""
        with httpx.Client(timeout=30) as http:
            http.delete(self.sim.url + "/_sim/requests").raise_for_status()
            http.post(self.sim.url + "/_sim/config", json={"record": True}).raise_for_status()
            resp = http.post(self.gw.url + path, content=chat_body(stream=stream) if body is None else body,
                             headers={"content-type": "application/json"})
            resp.raise_for_status()
            (rec,) = http.get(self.sim.url + "/_sim/requests").raise_for_status().json()
        headers = {k: v for k, v in rec["headers"].items() if k not in NOT_COPIED}
        return Upstream(self.sim.url + rec["path"], base64.b64decode(rec["body_b64"]), headers)

    def check_direct(self, up: Upstream) -> None:
        """One direct request signed as the load generator signs; the simulator must accept it and the
        signature must verify against the request as received."""
        signed = SigV4Headers(up.url, up.body, up.headers, **{k: v for k, v in up.sign_spec().items()
                                                               if k != "headers"}).sign()
        with httpx.Client(timeout=30) as http:
            http.delete(self.sim.url + "/_sim/requests").raise_for_status()
            http.post(up.url, content=up.body, headers=signed).raise_for_status()
            (rec,) = http.get(self.sim.url + "/_sim/requests").raise_for_status().json()
        sigv4.verify("POST", rec["path"], rec["headers"], base64.b64decode(rec["body_b64"]),
                     SIMULATOR_CREDENTIALS["access_key_id"], SIMULATOR_CREDENTIALS["secret_access_key"])

    def stop_recording(self) -> None:
        httpx.post(self.sim.url + "/_sim/config", json={"record": False}).raise_for_status()

    def start_litellm(self, executable: str) -> Proc:
        """LiteLLM's proxy, one worker, `sagemaker/` provider with sagemaker_base_url at the simulator."""
        endpoint = "jumpgate-demo-tgi-llama3-8b"
        params = {
            "model": f"sagemaker/{endpoint}", "sagemaker_base_url": f"{self.sim.url}/endpoints/{endpoint}/invocations",
            "aws_access_key_id": SIMULATOR_CREDENTIALS["access_key_id"],
            "aws_secret_access_key": SIMULATOR_CREDENTIALS["secret_access_key"], "aws_region_name": REGION,
            # The same llama3 prompt the gateway renders, given as LiteLLM's custom prompt template so that it
            # never tries to fetch a chat template from the Hugging Face hub (no network here).
            "initial_prompt_value": "<|begin_of_text|>",
            "roles": {"user": {"pre_message": "<|start_header_id|>user<|end_header_id|>\n\n",
                               "post_message": "<|eot_id|>"}},
            "final_prompt_value": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        }
        config = self.tmp / "litellm.yaml"
        # It refuses to start without a master key; a random one, sent by the load as a Bearer token.
        self.litellm_key = "sk-bench-" + secrets.token_hex(16)
        config.write_text(yaml.safe_dump({"model_list": [{"model_name": MODEL, "litellm_params": params}],
                                          "general_settings": {"master_key": self.litellm_key}}))
        port = free_port()
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "NO_PROXY": "*",
               "DISABLE_SCHEMA_UPDATE": "True"}
        self.litellm = CommandProc([executable, "--config", str(config), "--port", str(port), "--num_workers", "1"],
                                   port, "/health/liveliness", self.tmp / f"litellm-{port}.log", env)
        return self.litellm


class CommandProc(Proc):
    """A Proc running any command (LiteLLM lives in its own environment), not `python ARGS` of this one."""

    def __init__(self, argv: list[str], port: int, health: str, log_path: Path, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=self._log,
                                      stderr=subprocess.STDOUT)
        self._wait(health, timeout=LITELLM_START_S)


def find_litellm(explicit: str | None) -> str | None:
    """The `litellm` console script: --litellm, else next to this Python, else on PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "litellm"
    return str(beside) if beside.exists() else shutil.which("litellm")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children: none for a uvicorn worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU time of this process's reaped children: the load generators that have finished."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all cores), steal included, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK
