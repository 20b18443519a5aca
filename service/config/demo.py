"""The demo config `jumpgate serve` uses when no config is given: one model per schema (and an embedding model
on TEI), all served by the embedded simulator. Endpoint names match the simulator's demo endpoints. Also what
the demo and the standalone simulator print for a user: the banners, and the config as a file
(`jumpgate demo-config`).

Container facts are the versions the simulator plays by default (TGI 3.3.7 with grammar support, LMI 0.33.0
rolling batch), so the Llama 3 models get what their containers allow: native tools and `response_format` on the
TGI Messages API, grammar-constrained JSON and Meta's JSON tool format through the prompt on TGI generate, the
same tool format (a Llama 3 fine-tune keeps it) and JSON instructions on the Dolly-tuned LMI endpoint. The Llama 2
and FLAN-T5 models have no tool format: tools and structured output are refused there with a 400. The vision
model is Llama 3.2 11B Vision behind TGI's Messages API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from service.prompts.templates import DOLLY_TEMPLATE

# Static credentials are only for the loopback simulator, which checks that requests are SigV4-signed
# but cannot verify them against AWS. Real deployments use the standard credential chain.
SIMULATOR_CREDENTIALS = {"access_key_id": "AKIDJUMPGATEDEMO", "secret_access_key": "jumpgate-demo-secret"}

_ENDPOINTS: dict[str, dict[str, Any]] = {
    "llama3-8b-g5": {
        "endpoint_name": "jumpgate-demo-tgi-llama3-8b", "schema": "tgi", "instance_type": "ml.g5.2xlarge",
        "context_length": 8192, "max_concurrency": 32, "chat_template": "llama3",
        "container": {"kind": "tgi", "version": "3.3.7", "grammar": True},
    },
    "llama3-8b-g5-messages": {
        "endpoint_name": "jumpgate-demo-tgi-llama3-8b", "schema": "openai", "instance_type": "ml.g5.2xlarge",
        "context_length": 8192, "max_concurrency": 32,
        "container": {"kind": "tgi", "version": "3.3.7", "grammar": True},
    },
    "llama2-13b-inf2": {
        "endpoint_name": "jumpgate-demo-neuron-llama2-13b", "schema": "neuron", "instance_type": "ml.inf2.24xlarge",
        "context_length": 2048, "max_concurrency": 4, "chat_template": "llama2",
    },
    "llama2-7b-chat-js": {
        "endpoint_name": "jumpgate-demo-jumpstart-llama2-7b-chat", "schema": "jumpstart",
        "instance_type": "ml.g5.2xlarge", "context_length": 4096, "max_concurrency": 8,
        "custom_attributes": "accept_eula=true",
    },
    "llama3-8b-dolly-ft": {
        "endpoint_name": "jumpgate-demo-ft-llama3-8b-dolly", "schema": "lmi", "instance_type": "ml.g5.2xlarge",
        "context_length": 8192, "max_concurrency": 32, "prompt_template": DOLLY_TEMPLATE,
        "container": {"kind": "lmi", "version": "0.33.0"}, "tool_format": "llama3_json",
    },
    "flan-t5-xl-g5": {
        "endpoint_name": "jumpgate-demo-flan-t5-xl", "schema": "text2text", "instance_type": "ml.g5.2xlarge",
        "context_length": 2048, "max_concurrency": 8,
    },
    "llama32-11b-vision-g5": {
        "endpoint_name": "jumpgate-demo-tgi-llama32-11b-vision", "schema": "openai", "instance_type": "ml.g5.12xlarge",
        "context_length": 8192, "max_concurrency": 16,
        "container": {"kind": "tgi", "version": "3.3.7", "grammar": True, "vision": True, "max_images": 1},
    },
    "bge-large-tei-g5": {
        "endpoint_name": "jumpgate-demo-tei-bge-large", "schema": "tei", "instance_type": "ml.g5.xlarge",
        "context_length": 512, "max_concurrency": 32,
        "container": {"kind": "tei", "version": "1.9.4", "max_batch_size": 32},
    },
}

#: model name → endpoint id
DEMO_MODELS = {
    "llama3-8b": "llama3-8b-g5",
    "llama3-8b-messages": "llama3-8b-g5-messages",
    "llama2-13b-neuron": "llama2-13b-inf2",
    "llama2-7b-chat": "llama2-7b-chat-js",
    "llama3-8b-dolly": "llama3-8b-dolly-ft",
    "flan-t5-xl": "flan-t5-xl-g5",
    "llama32-11b-vision": "llama32-11b-vision-g5",
}


#: embedding model name → endpoint id (POST /v1/embeddings)
DEMO_EMBEDDING_MODELS = {
    "bge-large": "bge-large-tei-g5",
}


def demo_config_data(runtime_url: str, *, log_format: str | None = None) -> dict[str, Any]:
    """The demo config for a simulator at `runtime_url`; `log_format` adds a `logging` section."""
    data: dict[str, Any] = {
        "aws": {"region": "us-east-1", "runtime_url": runtime_url, "credentials": dict(SIMULATOR_CREDENTIALS)},
        "endpoints": {eid: dict(ep) for eid, ep in _ENDPOINTS.items()},
        "models": {
            **{name: {"targets": [{"endpoint": eid}], "defaults": {"max_new_tokens": 128}}
               for name, eid in DEMO_MODELS.items()},
            **{name: {"targets": [{"endpoint": eid}]} for name, eid in DEMO_EMBEDDING_MODELS.items()},
        },
    }
    if log_format is not None:
        data["logging"] = {"format": log_format}
    return data


#: how `jumpgate serve` logs when it runs the demo, and what `jumpgate demo-config` writes: lines for a person
DEMO_LOG_FORMAT = "text"

_YAML_HEADER = """\
# The jumpgate demo config: one model per payload schema, each served by the SageMaker simulator.
# Written by `jumpgate demo-config --runtime-url {url}`. Use it as it is:
#   jumpgate simulate --port {port}                      # the simulator, in one terminal
#   jumpgate serve --config jumpgate.yaml --port 8080    # the gateway in front of it, in another
# or start your own config from it: point the endpoints at real SageMaker endpoints, then delete
# aws.runtime_url (the SageMaker runtime of aws.region is the default) and aws.credentials (the fixed keys only
# satisfy the simulator, which checks that requests are signed, not by whom; the standard AWS credential chain
# is used without them). `jumpgate check-config FILE` validates a config and prints what it resolves to.
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the Dolly prompt template) as readable `|` blocks rather than escaped one-liners."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def demo_config_yaml(runtime_url: str) -> str:
    """`jumpgate demo-config`: the demo config as a commented YAML file (what `jumpgate serve` runs by default)."""
    port = urlsplit(runtime_url).port or (443 if runtime_url.startswith("https") else 80)
    body = yaml.dump(demo_config_data(runtime_url, log_format=DEMO_LOG_FORMAT), Dumper=_Dumper,
                     sort_keys=False, width=120, allow_unicode=True)
    return _YAML_HEADER.format(url=runtime_url, port=port) + body


def display_base(host: str, port: int) -> str:
    """The URL to tell a user: a wildcard bind (0.0.0.0, ::) is reached on this machine through loopback."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def usage_banner(host: str, port: int) -> str:
    base = display_base(host, port)
    models = ", ".join(DEMO_MODELS)
    embedding = ", ".join(DEMO_EMBEDDING_MODELS)
    return f"""
jumpgate is serving the demo config on {base} (upstream: the embedded SageMaker simulator)
models: {models}
embedding models: {embedding}

  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "llama3-8b", "messages": [{{"role": "user", "content": "Hello"}}], "max_tokens": 32}}'

  # the OpenAI SDK needs `pip install openai` in the Python you run (make serve installs only the gateway):
  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='unused'); \\
print(c.chat.completions.create(model='llama2-13b-neuron', \\
messages=[{{'role': 'user', 'content': 'Hello'}}]).choices[0].message.content)"

  curl -s {base}/v1/embeddings -H 'content-type: application/json' \\
    -d '{{"model": "bge-large", "input": ["first text", "second text"]}}'

This demo's config: `jumpgate demo-config`. One log line per request follows; Ctrl-C stops.
"""


def simulator_banner(base: str, latency: str, endpoints: list[tuple[str, str, str, int, int]],
                     config_path: str | None) -> str:
    """What `jumpgate simulate` prints once it listens. `endpoints`: (name, container, accelerator,
    max_total_tokens, slots) of every endpoint it serves."""
    width = max(len(e[0]) for e in endpoints)
    rows = "\n".join(f"  {name:<{width}}  {container:<10}  {accel:<4}  {tokens:>5} tokens, {slots} slots"
                     for name, container, accel, tokens, slots in endpoints)
    if config_path is None:
        then = (f"  jumpgate demo-config --runtime-url {base} > jumpgate.yaml\n"
                f"  jumpgate serve --config jumpgate.yaml")
    else:
        then = f"  set aws.runtime_url: {base} in {config_path}, then: jumpgate serve --config {config_path}"
    return f"""jumpgate simulator (the SageMaker runtime API) listening on {base}, latency: {latency}
endpoints (POST /endpoints/NAME/invocations, /endpoints/NAME/invocations-response-stream):
{rows}
a gateway in front of it:
{then}
Ctrl-C stops."""
