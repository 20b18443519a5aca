"""`jumpgate discover`: the account's SageMaker real-time endpoints turned into a jumpgate config (YAML text).

Three stages, so each can be tested alone:
- `gather(client, region)` makes the control-plane calls (ListEndpoints, DescribeEndpoint, DescribeEndpointConfig,
  DescribeModel; ListInferenceComponents / DescribeInferenceComponent only for variants without a model, which is
  how endpoints that host inference components are built) and returns plain `Found` / `Skipped` records.
- `SCHEMA_RULES` (a table, first match wins) names the payload schema from the image URI, environment, instance
  accelerator and model / endpoint names; `SCHEMA_HINTS` says which environment variables carry each schema's
  context budget and batch size. Nothing is guessed: a variant no rule matches is skipped, and the output says why
  and what to write by hand.
- `render(discovery)` writes the YAML, with a comment on every inferred value saying where it came from.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from service import cost

#: ListEndpoints statuses in which an endpoint cannot answer: listed in the output as skipped.
_UNSERVABLE = frozenset({"Failed", "Deleting", "OutOfService"})
_NEURON = frozenset({"inf1", "inf2", "trn1"})
DEFAULT_CONCURRENCY = 32


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


@dataclass(frozen=True)
class Skipped:
    where: str
    why: str
    hint: str


@dataclass(frozen=True)
class Discovery:
    region: str
    endpoints_seen: int
    found: tuple[Found, ...]
    skipped: tuple[Skipped, ...]


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
                    and (not self.names or any(re.search(self.names, n, re.IGNORECASE) for n in found.names))
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
    Rule("jumpstart", "JumpStart Meta Llama 2 model on the PyTorch inference container", repo="pytorch-inference",
         names="meta-textgeneration-llama-2"),
    Rule("text2text", "JumpStart Hugging Face text2text model on the HF PyTorch inference image",
         repo="huggingface-pytorch-inference", names="(huggingface|hf)-text2text"),
    Rule("text2text", "HF_TASK=text2text-generation on the HF PyTorch inference image",
         repo="huggingface-pytorch-inference", env=(("HF_TASK", "text2text-generation"),)),
)


@dataclass(frozen=True)
class Hints:
    """Per schema: env variables holding the prompt + new tokens budget and the per-replica batch size, and
    whether the schema takes prompt text (so a chat template applies)."""

    context_env: tuple[str, ...] = ()
    batch_env: tuple[str, ...] = ()
    text_prompt: bool = False


SCHEMA_HINTS: dict[str, Hints] = {
    "tgi": Hints(("MAX_TOTAL_TOKENS",), ("MAX_CONCURRENT_REQUESTS",), text_prompt=True),
    "lmi": Hints(("OPTION_MAX_MODEL_LEN",), ("OPTION_MAX_ROLLING_BATCH_SIZE",), text_prompt=True),
    "neuron": Hints(("OPTION_N_POSITIONS", "OPTION_MAX_MODEL_LEN"), ("OPTION_MAX_ROLLING_BATCH_SIZE",),
                    text_prompt=True),
}

#: (regex searched in the model id, else the names; template). Only chat / instruct tunings: a base model
#: has no chat format, so it gets none.
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
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    repo, _, tag = last.partition(":")
    return repo, tag


def schema_rule(found: Found) -> Rule | None:
    return next((rule for rule in SCHEMA_RULES if rule.matches(found)), None)


# --- gathering --------------------------------------------------------------------------------------
Item = Found | Skipped


def gather(client: Any, region: str, *, page_size: int = 100) -> Discovery:
    """Describe every real-time endpoint `client` (a boto3 SageMaker client) can list. Raises botocore errors
    from ListEndpoints only; a failure on one endpoint skips that endpoint and says why."""
    summaries = list(_pages(client.list_endpoints, "Endpoints", MaxResults=page_size))
    items: list[Item] = []
    for summary in summaries:
        name, status = summary["EndpointName"], summary.get("EndpointStatus", "")
        if status in _UNSERVABLE:
            items.append(Skipped(f'endpoint "{name}"', f"its status is {status}", "redeploy it, then run discover again"))
            continue
        try:
            items += _endpoint(client, name)
        except _aws_errors() as exc:
            items.append(Skipped(f'endpoint "{name}"', f"could not be described ({aws_error(exc)})",
                                 "check the IAM policy allows sagemaker:Describe*, then run discover again"))
    return Discovery(region, len(summaries), tuple(i for i in items if isinstance(i, Found)),
                     tuple(i for i in items if isinstance(i, Skipped)))


def _pages(call: Callable[..., Mapping[str, Any]], key: str, **kwargs: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def _endpoint(client: Any, name: str) -> list[Item]:
    described = client.describe_endpoint(EndpointName=name)
    config = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    live = {v["VariantName"]: v for v in described.get("ProductionVariants", [])}
    variants = config.get("ProductionVariants", [])
    items: list[Item] = []
    for pv in variants:
        items += _variant(client, name, pv, live.get(pv["VariantName"], {}), several=len(variants) > 1)
    return items


def _variant(client: Any, name: str, pv: Mapping[str, Any], live: Mapping[str, Any], several: bool) -> list[Item]:
    where = f'endpoint "{name}" variant "{pv["VariantName"]}"'
    if not pv.get("InstanceType"):
        return [Skipped(where, "it is serverless, so it has no instance type to price",
                        f"add it by hand with endpoint_name: {name}, an instance_type and price_per_hour")]
    count = live.get("CurrentInstanceCount") or live.get("DesiredInstanceCount") or pv.get("InitialInstanceCount")
    base = Found(endpoint_name=name, variant=pv["VariantName"], instance_type=pv["InstanceType"],
                 instance_count=max(int(count or 1), 1), several_variants=several, names=(name,),
                 weight=float(live.get("CurrentWeight", pv.get("InitialVariantWeight", 1.0))))
    if pv.get("ModelName"):
        return [_with_model(client, base, pv["ModelName"], live, where)]
    return _components(client, base, where)


def _with_model(client: Any, base: Found, model: str, live: Mapping[str, Any], where: str) -> Item:
    named = replace(base, names=(*base.names, model))
    try:
        image, env = container_of(client.describe_model(ModelName=model))
    except _aws_errors() as exc:
        deployed = [d["SpecifiedImage"] for d in live.get("DeployedImages", []) if d.get("SpecifiedImage")]
        why = f"its model {model!r} could not be described ({aws_error(exc)})"
        if not deployed:
            return Skipped(where, why + " and the endpoint reports no deployed image",
                           f"add it by hand with endpoint_name: {base.endpoint_name} and the schema it speaks")
        return replace(named, image=deployed[0], note=why + ": environment unknown, defaults used")
    return replace(named, image=image, env={**base.env, **env})


def container_of(model: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Image and environment of a DescribeModel answer: the primary container, else the first of `Containers`."""
    container = model.get("PrimaryContainer") or {}
    if not container.get("Image"):
        container = (model.get("Containers") or [{}])[0]
    return container.get("Image", ""), dict(container.get("Environment") or {})


def _components(client: Any, base: Found, where: str) -> list[Item]:
    hint = ("add one endpoint per inference component by hand, with endpoint_name: "
            f"{base.endpoint_name} and inference_component: <its name>")
    try:
        listed = list(_pages(client.list_inference_components, "InferenceComponents",
                             EndpointNameEquals=base.endpoint_name, VariantNameEquals=base.variant))
    except _aws_errors() as exc:
        return [Skipped(where, "it has no model, so it hosts inference components, but they could not be "
                        f"listed ({aws_error(exc)})", hint)]
    if not listed:
        return [Skipped(where, "it has no model and no inference components", "deploy one, then run discover again")]
    return [_component(client, base, s["InferenceComponentName"], where) for s in listed]


def _component(client: Any, base: Found, name: str, where: str) -> Item:
    where = f'{where} inference component "{name}"'
    try:
        described = client.describe_inference_component(InferenceComponentName=name)
    except _aws_errors() as exc:
        return Skipped(where, f"could not be described ({aws_error(exc)})",
                       f"add it by hand with inference_component: {name}")
    spec = described.get("Specification") or {}
    container = spec.get("Container") or {}
    found = replace(base, component=name, names=(*base.names, name),
                    copies=max(int((described.get("RuntimeConfig") or {}).get("CurrentCopyCount") or 1), 1),
                    env=dict(container.get("Environment") or {}))
    image = (container.get("DeployedImage") or {}).get("SpecifiedImage") or container.get("Image", "")
    if spec.get("ModelName") and not image:
        return _with_model(client, found, spec["ModelName"], {}, where)
    return replace(found, image=image)


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def aws_error(exc: Exception) -> str:
    """A one-line reason from a botocore error (a 500 with an HTML body, as moto sends, is named as such)."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    message = " ".join(str(error.get("Message") or exc).split())
    if message.startswith("<"):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        message = f"HTTP {status} with an HTML body: the service may not implement this call"
    code = error.get("Code", type(exc).__name__)
    return f"{code}: {message[:200]}"
