"""The inference tables on their own: image URI → schema, names → chat template and EULA attribute."""

from __future__ import annotations

import pytest

from service.adapters import schema_names
from service.discover import rules as discover
from service.discover.rules import Found

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"


def found(image: str, instance_type: str = "ml.g5.2xlarge", env: dict[str, str] | None = None,
          names: tuple[str, ...] = ("my-endpoint",)) -> Found:
    return Found(endpoint_name=names[0], variant="AllTraffic", instance_type=instance_type, instance_count=1,
                 image=image, env=env or {}, names=names)


def test_every_rule_names_a_registered_schema() -> None:
    assert {r.schema for r in discover.SCHEMA_RULES} | set(discover.SCHEMA_HINTS) <= set(schema_names())


@pytest.mark.parametrize(("image", "repo_tag"), [
    (f"{ECR}/djl-inference:0.29.0-lmi11.0.0-cu124", ("djl-inference", "0.29.0-lmi11.0.0-cu124")),
    ("ghcr.io/huggingface/text-generation-inference:2.4.0", ("text-generation-inference", "2.4.0")),
    ("localhost:5000/tgi@sha256:abc", ("tgi", "")),
    ("", ("", "")),
])
def test_split_image(image: str, repo_tag: tuple[str, str]) -> None:
    assert discover.split_image(image) == repo_tag


@pytest.mark.parametrize(("item", "schema"), [
    (found(f"{ECR}/huggingface-pytorch-tgi-inference:2.3.0-tgi2.2.0-gpu-py310-cu121-ubuntu22.04"), "tgi"),
    (found(f"{ECR}/huggingface-pytorch-tgi-inference:2.1.2-optimum0.0.25-neuronx-py310-ubuntu22.04",
           "ml.inf2.xlarge"), "tgi"),  # TGI on Neuron still speaks the TGI schema
    (found(f"{ECR}/djl-inference:0.26.0-deepspeed0.12.6-cu121"), "lmi"),
    (found(f"{ECR}/djl-inference:0.27.0-tensorrtllm0.8.0-cu122"), "lmi"),
    (found(f"{ECR}/djl-inference:0.30.0-vllm0.6.0-cu124"), "lmi"),
    (found(f"{ECR}/djl-inference:0.28.0-neuronx-sdk2.18.2", "ml.inf2.48xlarge"), "neuron"),
    (found("my/lmi:1", "ml.inf2.xlarge", {"OPTION_ROLLING_BATCH": "auto"}), "neuron"),
    (found("my/lmi:1", env={"OPTION_ENTRYPOINT": "djl_python.transformers_neuronx"}), "neuron"),
    (found(f"{ECR}/pytorch-inference:2.0.1-gpu-py310", names=("jumpstart-dft-meta-textgeneration-llama-2-13b-f",)),
     "jumpstart"),
    (found(f"{ECR}/huggingface-pytorch-inference:1.13.1-transformers4.26.0-gpu-py39-cu117-ubuntu20.04",
           names=("ep", "huggingface-text2text-flan-t5-xxl-model")), "text2text"),
    (found(f"{ECR}/huggingface-pytorch-inference:2.1.0-transformers4.37.0-gpu-py310",
           env={"HF_TASK": "text2text-generation"}), "text2text"),
    # not guessed:
    (found(f"{ECR}/djl-inference:0.21.0-cpu-full"), None),
    (found("my/lmi:1", env={"OPTION_ROLLING_BATCH": "auto"}), None),  # rolling batch on a GPU: LMI or other?
    (found(f"{ECR}/pytorch-inference:2.0.1-gpu-py310"), None),  # a PyTorch image without a Llama name
    # a base (text) Llama 2 on the Meta container takes a string, not the dialogs the jumpstart adapter sends
    (found(f"{ECR}/pytorch-inference:2.0.1-gpu-py310", names=("meta-textgeneration-llama-2-7b-2024",)), None),
    (found(f"{ECR}/huggingface-pytorch-inference:2.1.0-transformers4.37.0-gpu-py310"), None),  # task unknown
    (found(f"{ECR}/huggingface-pytorch-tgi-inference-fork:1"), None),  # the repository must match in full
])
def test_schema_rules(item: Found, schema: str | None) -> None:
    rule = discover.schema_rule(item)
    assert (rule.schema if rule else None) == schema


@pytest.mark.parametrize(("model_id", "template"), [
    ("meta-llama/Meta-Llama-3-70B-Instruct", "llama3"),
    ("meta-llama/Llama-3.2-3B-Instruct", "llama3"),
    ("meta-llama/Llama-2-7b-chat-hf", "llama2"),
    ("meta-llama/Llama-2-7b-hf", None),    # a base model has no chat format
    ("meta-llama/Meta-Llama-3-8B", None),
    ("huggyllama/llama-30b-chat", None),  # not Llama 3
    ("mistralai/Mistral-7B-Instruct-v0.2", None),
])
def test_chat_template_only_when_obvious(model_id: str, template: str | None) -> None:
    item = found(f"{ECR}/huggingface-pytorch-tgi-inference:2.3.0", env={"HF_MODEL_ID": model_id})
    fields = {key: value for key, value, _ in discover.endpoint_fields(item, discover.SCHEMA_RULES[4])}
    assert fields.get("chat_template") == template


def test_non_numeric_limits_are_ignored_not_guessed() -> None:
    item = found(f"{ECR}/djl-inference:0.29.0-lmi11.0.0-cu124",
                 env={"OPTION_MAX_MODEL_LEN": "auto", "OPTION_MAX_ROLLING_BATCH_SIZE": "0"})
    rule = discover.schema_rule(item)
    assert rule is not None
    fields = {key: value for key, value, _ in discover.endpoint_fields(item, rule)}
    assert "context_length" not in fields and fields["max_concurrency"] == discover.DEFAULT_CONCURRENCY
