"""The demo config `jumpgate serve` uses when no config is given: one model per schema, all served by
the embedded simulator. Endpoint names match the simulator's demo endpoints.

Container facts are the versions the simulator plays by default (TGI 3.3.7 with grammar support, LMI 0.33.0
rolling batch), so the Llama 3 models get what their containers allow: native tools and `response_format` on the
TGI Messages API, grammar-constrained JSON and Meta's JSON tool format through the prompt on TGI generate, the
same tool format (a Llama 3 fine-tune keeps it) and JSON instructions on the Dolly-tuned LMI endpoint. The Llama 2
and FLAN-T5 models have no tool format: tools and structured output are refused there with a 400. The vision
model is Llama 3.2 11B Vision behind TGI's Messages API.
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


def demo_config_data(runtime_url: str) -> dict[str, Any]:
    return {
        "aws": {"region": "us-east-1", "runtime_url": runtime_url, "credentials": SIMULATOR_CREDENTIALS},
        "endpoints": {eid: dict(ep) for eid, ep in _ENDPOINTS.items()},
        "models": {
            name: {"targets": [{"endpoint": eid}], "defaults": {"max_new_tokens": 128}}
            for name, eid in DEMO_MODELS.items()
        },
    }


def usage_banner(host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    models = ", ".join(DEMO_MODELS)
    return f"""
jumpgate is serving the demo config on {base} (upstream: the embedded SageMaker simulator)
models: {models}

  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "llama3-8b", "messages": [{{"role": "user", "content": "Hello"}}], "max_tokens": 32}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='unused'); \\
print(c.chat.completions.create(model='llama2-13b-neuron', \\
messages=[{{'role': 'user', 'content': 'Hello'}}]).choices[0].message.content)"
"""
