"""The demo config `jumpgate serve` uses when no config is given: one model per schema (and an embedding model
on TEI), all served by the embedded simulator. Endpoint names match the simulator's demo endpoints.
"""

from __future__ import annotations

from typing import Any

from service.prompts.templates import DOLLY_TEMPLATE

# Static credentials are only for the loopback simulator, which checks that requests are SigV4-signed
# but cannot verify them against AWS. Real deployments use the standard credential chain.
SIMULATOR_CREDENTIALS = {"access_key_id": "AKIDJUMPGATEDEMO", "secret_access_key": "jumpgate-demo-secret"}

_ENDPOINTS: dict[str, dict[str, Any]] = {
    "llama3-8b-g5": {
        "endpoint_name": "jumpgate-demo-tgi-llama3-8b", "schema": "tgi", "instance_type": "ml.g5.2xlarge",
        "context_length": 8192, "max_concurrency": 32, "chat_template": "llama3",
    },
    "llama3-8b-g5-messages": {
        "endpoint_name": "jumpgate-demo-tgi-llama3-8b", "schema": "openai", "instance_type": "ml.g5.2xlarge",
        "context_length": 8192, "max_concurrency": 32,
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
    },
    "flan-t5-xl-g5": {
        "endpoint_name": "jumpgate-demo-flan-t5-xl", "schema": "text2text", "instance_type": "ml.g5.2xlarge",
        "context_length": 2048, "max_concurrency": 8,
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
}


#: embedding model name → endpoint id (POST /v1/embeddings)
DEMO_EMBEDDING_MODELS = {
    "bge-large": "bge-large-tei-g5",
}


def demo_config_data(runtime_url: str) -> dict[str, Any]:
    return {
        "aws": {"region": "us-east-1", "runtime_url": runtime_url, "credentials": SIMULATOR_CREDENTIALS},
        "endpoints": {eid: dict(ep) for eid, ep in _ENDPOINTS.items()},
        "models": {
            **{name: {"targets": [{"endpoint": eid}], "defaults": {"max_new_tokens": 128}}
               for name, eid in DEMO_MODELS.items()},
            **{name: {"targets": [{"endpoint": eid}]} for name, eid in DEMO_EMBEDDING_MODELS.items()},
        },
    }


def usage_banner(host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    models = ", ".join(DEMO_MODELS)
    embedding = ", ".join(DEMO_EMBEDDING_MODELS)
    return f"""
jumpgate is serving the demo config on {base} (upstream: the embedded SageMaker simulator)
models: {models}
embedding models: {embedding}

  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "llama3-8b", "messages": [{{"role": "user", "content": "Hello"}}], "max_tokens": 32}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='unused'); \\
print(c.chat.completions.create(model='llama2-13b-neuron', \\
messages=[{{'role': 'user', 'content': 'Hello'}}]).choices[0].message.content)"

  curl -s {base}/v1/embeddings -H 'content-type: application/json' \
    -d '{{"model": "bge-large", "input": ["first text", "second text"]}}'
"""
