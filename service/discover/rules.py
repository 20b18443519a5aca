"""`jumpgate discover`'s data and rules: what was found, which schema a container is (`SCHEMA_RULES`, first
match wins), where each schema keeps its budgets (`SCHEMA_HINTS`), and the config values inferred from them.
Pure: no AWS calls here (those are in service/discover/scan.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from service.telemetry import cost

DEFAULT_CONCURRENCY = 32
_UNSERVABLE = frozenset({"Failed", "Deleting", "OutOfService"})  # endpoint statuses that cannot answer
_NEURON = frozenset({"inf1", "inf2", "trn1"})
_AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class Found:
    """One thing jumpgate can target: an endpoint's production variant, or one inference component on it."""

    endpoint_name: str
    variant: str
    instance_type: str
    instance_count: int
    weight: float = 1.0
    several_variants: bool = False
    image: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # endpoint, model and component names: what name rules search
    component: str | None = None
    copies: int = 1  # inference component copies (each one holds the model's batch)
    note: str = ""
    # where it was found and what it serves (service/discover/estate.py merges endpoints serving one model)
    region: str = ""
    role_arn: str | None = None  # found through this role (another account); None: the base credentials
    jumpstart_id: str = ""  # the endpoint's sagemaker-sdk:jumpstart-model-id tag
    model_data: str = ""  # ModelDataUrl / ModelDataSource S3 URI, or the Hub model id the container loads
    serverless_memory_mb: int | None = None  # ServerlessConfig.MemorySizeInMB: a serverless variant
    serverless_concurrency: int | None = None  # ServerlessConfig.MaxConcurrency


class Skipped(NamedTuple):
    where: str
    why: str
    hint: str


class Discovery(NamedTuple):
    region: str
    endpoints_seen: int
    found: tuple[Found, ...]
    skipped: tuple[Skipped, ...]
    role_arn: str | None = None  # scanned through this role (another account)


# --- rule tables ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """Every condition given must hold. `repo` fully matches the image repository (the last path part of the
    URI, before ':'), `tag` is searched in the tag, each `env` regex fully matches the variable's value ('' when
    unset), `names` is searched (case-insensitive) in the endpoint / model / component names."""

    schema: str
    why: str
    repo: str = ""
    tag: str = ""
    env: tuple[tuple[str, str], ...] = ()
    names: str = ""
    accelerators: frozenset[str] = frozenset()

    def matches(self, found: Found) -> bool:
        repo, tag = split_image(found.image)
        return bool((not self.repo or re.fullmatch(self.repo, repo))
                    and (not self.tag or re.search(self.tag, tag))
                    and all(re.fullmatch(rx, found.env.get(var, "")) for var, rx in self.env)
                    and (not self.names or _search(self.names, found.names))
                    and (not self.accelerators or cost.accelerator_for(found.instance_type) in self.accelerators))


#: First match wins: Neuron before LMI (both are djl-inference), images before names.
SCHEMA_RULES: tuple[Rule, ...] = (
    Rule("neuron", "LMI NeuronX image (djl-inference, neuronx tag)", repo="djl-inference", tag="neuronx"),
    Rule("neuron", "OPTION_ENTRYPOINT=djl_python.transformers_neuronx",
         env=(("OPTION_ENTRYPOINT", r"djl_python\.transformers_neuronx"),)),
    Rule("neuron", "OPTION_ROLLING_BATCH on an Inferentia / Trainium instance",
         env=(("OPTION_ROLLING_BATCH", ".+"),), accelerators=_NEURON),
    Rule("lmi", "DJL LMI image (djl-inference, lmi / deepspeed / tensorrtllm / vllm tag)", repo="djl-inference",
         tag="lmi|deepspeed|tensorrtllm|vllm"),
    Rule("tgi", "Hugging Face TGI DLC image", repo="huggingface-pytorch-tgi-inference"),
    Rule("tgi", "Text Generation Inference image", repo="text-generation-inference"),
    # The jumpstart adapter sends dialogs, which only the chat ("-f") models take; base models are left unmatched.
    Rule("jumpstart", "JumpStart Meta Llama 2 chat model on the PyTorch inference container",
         repo="pytorch-inference", names=r"meta-textgeneration-llama-2-\d+b-f\b"),
    Rule("text2text", "JumpStart Hugging Face text2text model on the HF PyTorch inference image",
         repo="huggingface-pytorch-inference", names="(huggingface|hf)-text2text"),
    Rule("text2text", "HF_TASK=text2text-generation on the HF PyTorch inference image",
         repo="huggingface-pytorch-inference", env=(("HF_TASK", "text2text-generation"),)),
)


class Hints(NamedTuple):
    """Per schema: env variables holding the prompt + new tokens budget and the per-replica batch size, and
    whether the schema takes prompt text (so a chat template applies)."""

    context_env: tuple[str, ...] = ()
    batch_env: tuple[str, ...] = ()
    text_prompt: bool = False


SCHEMA_HINTS: dict[str, Hints] = {
    "tgi": Hints(("MAX_TOTAL_TOKENS",), ("MAX_CONCURRENT_REQUESTS",), text_prompt=True),
    "lmi": Hints(("OPTION_MAX_MODEL_LEN",), ("OPTION_MAX_ROLLING_BATCH_SIZE",), text_prompt=True),
    "neuron": Hints(("OPTION_N_POSITIONS", "OPTION_MAX_MODEL_LEN"), ("OPTION_MAX_ROLLING_BATCH_SIZE",), True),
}

#: (regex searched in the model id, else the names; template). Only chat / instruct tunings: base models get none.
CHAT_TEMPLATE_RULES: tuple[tuple[str, str], ...] = (
    (r"llama-?3(\.\d+)?\b.*(instruct|chat)", "llama3"),
    (r"llama-?2\b.*(chat|-f\b)", "llama2"),
)
_MODEL_ID_ENV = ("HF_MODEL_ID", "OPTION_MODEL_ID", "MODEL_ID")

#: (regex searched in the names, custom attributes, why)
ATTRIBUTE_RULES: tuple[tuple[str, str, str], ...] = (
    ("meta-textgeneration", "accept_eula=true", "JumpStart Meta model: requests must accept the Llama EULA"),
)


def split_image(image: str) -> tuple[str, str]:
    """'123.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.29.0-lmi11.0.0-cu124' → ('djl-inference', '0.29.0-...')."""
    repo, _, tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")
    return repo, tag


def _search(pattern: str, texts: tuple[str, ...]) -> bool:
    return any(re.search(pattern, text, re.IGNORECASE) for text in texts)


def schema_rule(found: Found) -> Rule | None:
    return next((rule for rule in SCHEMA_RULES if rule.matches(found)), None)



# --- inference of the config values (pure) ----------------------------------------------------------
Field = tuple[str, Any, str]  # key, value, comment saying where the value came from


def _env_int(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, int] | None:
    values = ((name, env.get(name, "").strip()) for name in names)
    return next(((name, int(v)) for name, v in values if v.isdigit() and int(v) > 0), None)


def _concurrency(found: Found, hints: Hints) -> Field:
    if found.serverless_memory_mb is not None and found.serverless_concurrency:
        return "max_concurrency", found.serverless_concurrency, "ServerlessConfig.MaxConcurrency"
    replicas, nouns = (found.copies, "copy copies") if found.component else (found.instance_count, "instance instances")
    batch = _env_int(found.env, hints.batch_env)
    if batch is None:
        return "max_concurrency", DEFAULT_CONCURRENCY, "default: no batch size setting in the environment"
    return "max_concurrency", batch[1] * replicas, f"{batch[0]} {batch[1]} x {replicas} {nouns.split()[replicas > 1]}"


def _chat_template(found: Found) -> Field | None:
    ids = [found.env[v] for v in _MODEL_ID_ENV if found.env.get(v)]
    return next((("chat_template", template, f"from {text}") for text in (*ids, *found.names)
                 for pattern, template in CHAT_TEMPLATE_RULES if re.search(pattern, text, re.IGNORECASE)), None)


def _where(found: Found) -> list[Field]:
    fields: list[Field] = [("region", found.region, "where it was found")] if found.region else []
    if found.role_arn:
        fields.append(("credentials", {"role_arn": found.role_arn},
                       "found through this role: the gateway assumes it from its own credentials"))
    return fields


def _capacity(found: Found) -> list[Field]:
    if found.serverless_memory_mb is not None:
        return [("serverless", {"memory_mb": found.serverless_memory_mb},
                 "ServerlessConfig: billed per second by memory; the stream API is not used")]
    fields: list[Field] = [("instance_type", found.instance_type, ""),
                           ("instance_count", found.instance_count, "current instance count of the variant")]
    if cost.price_per_hour(found.instance_type, None) is None:
        fields.append(("price_per_hour", 0.0, f"SET BY HAND: no built-in price for {found.instance_type}: "
                                              "set the USD price per instance-hour"))
    return fields


def endpoint_fields(found: Found, rule: Rule) -> list[Field]:
    """The config keys of one jumpgate endpoint, each with the reason for its value."""
    hints = SCHEMA_HINTS.get(rule.schema, Hints())
    fields: list[Field] = [("endpoint_name", found.endpoint_name, ""), ("schema", rule.schema, rule.why),
                           *_where(found), *_capacity(found), _concurrency(found, hints)]
    if (context := _env_int(found.env, hints.context_env)) is not None:
        fields.append(("context_length", context[1], context[0]))
    if hints.text_prompt and (template := _chat_template(found)):
        fields.append(template)
    fields += [("custom_attributes", attrs, why) for pattern, attrs, why in ATTRIBUTE_RULES
               if _search(pattern, found.names)][:1]
    if found.several_variants and not found.component:
        fields.append(("target_variant", found.variant, "the endpoint has several variants: one entry each"))
    if found.component:
        fields.append(("inference_component", found.component, ""))
    return fields
