"""`jumpgate discover`: the account's SageMaker real-time endpoints turned into a jumpgate config (YAML text).

- `gather(client, region)` makes the control-plane calls (ListEndpoints, DescribeEndpoint, DescribeEndpointConfig,
  DescribeModel; List/DescribeInferenceComponent only for variants without a model, which is how endpoints that
  host inference components are built) and returns plain `Found` / `Skipped` records.
- `SCHEMA_RULES` (first match wins) names the schema from the image URI, environment, accelerator and names;
  `SCHEMA_HINTS` says which environment variables hold each schema's context budget and batch size. Nothing is
  guessed: a variant no rule matches is skipped, and the output says why and what to write by hand.
- `render(discovery)` writes the YAML, with a comment on each inferred value saying where it came from.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from service import cost

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


class Skipped(NamedTuple):
    where: str
    why: str
    hint: str


class Discovery(NamedTuple):
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


# --- gathering --------------------------------------------------------------------------------------
Item = Found | Skipped


def gather(client: Any, region: str, *, page_size: int = 100) -> Discovery:
    """Describe every real-time endpoint `client` (a boto3 SageMaker client) can list. Raises botocore errors
    from ListEndpoints only; a failure on one endpoint skips that endpoint and says why."""
    summaries = list(_pages(client.list_endpoints, "Endpoints", MaxResults=page_size))
    items: list[Item] = []
    for summary in summaries:
        name, status = summary["EndpointName"], summary.get("EndpointStatus", "")
        try:
            items += _endpoint(client, name) if status not in _UNSERVABLE else [
                Skipped(f'endpoint "{name}"', f"its status is {status}", "fix it, then run discover again")]
        except _AWS_ERRORS as exc:
            items.append(Skipped(f'endpoint "{name}"', f"could not be described ({aws_error(exc)})",
                                 "check the IAM policy allows sagemaker:Describe*, then run discover again"))
    return Discovery(region, len(summaries), tuple(i for i in items if isinstance(i, Found)),
                     tuple(i for i in items if isinstance(i, Skipped)))


def _pages(call: Callable[..., Mapping[str, Any]], key: str, **kwargs: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        if not (token := page.get("NextToken")):
            return


def _endpoint(client: Any, name: str) -> list[Item]:
    described = client.describe_endpoint(EndpointName=name)
    variants = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"]).get(
        "ProductionVariants", [])
    live = {v["VariantName"]: v for v in described.get("ProductionVariants", [])}
    return [item for pv in variants
            for item in _variant(client, name, pv, live.get(pv["VariantName"], {}), several=len(variants) > 1)]


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
    except _AWS_ERRORS as exc:
        deployed = [d["SpecifiedImage"] for d in live.get("DeployedImages", []) if d.get("SpecifiedImage")]
        why = f"its model {model!r} could not be described ({aws_error(exc)})"
        if not deployed:
            return Skipped(where, why + " and the endpoint reports no deployed image",
                           f"add it by hand with endpoint_name: {base.endpoint_name} and the schema it speaks")
        return replace(named, image=deployed[0], note=why + ": environment unknown, defaults used")
    return replace(named, image=image, env={**env, **base.env})  # a component's own env wins over its model's


def container_of(model: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Image and environment of a DescribeModel answer: the primary container, else the first of `Containers`."""
    container = model.get("PrimaryContainer") or {}
    if not container.get("Image"):
        container = (model.get("Containers") or [{}])[0]
    return container.get("Image", ""), dict(container.get("Environment") or {})


def _components(client: Any, base: Found, where: str) -> list[Item]:
    try:
        listed = list(_pages(client.list_inference_components, "InferenceComponents",
                             EndpointNameEquals=base.endpoint_name, VariantNameEquals=base.variant))
    except _AWS_ERRORS as exc:
        return [Skipped(where, "it has no model, so it hosts inference components, but they could not be "
                        f"listed ({aws_error(exc)})", "add one endpoint per inference component by hand, with "
                        f"endpoint_name: {base.endpoint_name} and inference_component: <its name>")]
    if not listed:
        return [Skipped(where, "it has no model and no inference components", "deploy one, then run discover again")]
    return [_component(client, base, s["InferenceComponentName"], where) for s in listed]


def _component(client: Any, base: Found, name: str, where: str) -> Item:
    where = f'{where} inference component "{name}"'
    try:
        described = client.describe_inference_component(InferenceComponentName=name)
    except _AWS_ERRORS as exc:
        return Skipped(where, f"could not be described ({aws_error(exc)})",
                       f"add it by hand with inference_component: {name}")
    spec = described.get("Specification") or {}
    container = spec.get("Container") or {}
    found = replace(base, component=name, names=(*base.names, name), env=dict(container.get("Environment") or {}),
                    copies=max(int((described.get("RuntimeConfig") or {}).get("CurrentCopyCount") or 1), 1))
    image = (container.get("DeployedImage") or {}).get("SpecifiedImage") or container.get("Image", "")
    if spec.get("ModelName") and not image:
        return _with_model(client, found, spec["ModelName"], {}, where)
    return replace(found, image=image)


def aws_error(exc: Exception) -> str:
    """A one-line reason from a botocore error (a 500 with an HTML body, as moto sends, is named as such)."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    message = " ".join(str(error.get("Message") or exc).split())
    if message.startswith("<"):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        message = f"HTTP {status} with an HTML body: the service may not implement this call"
    return f"{error.get('Code', type(exc).__name__)}: {message[:200]}"


# --- inference of the config values (pure) ----------------------------------------------------------
Field = tuple[str, Any, str]  # key, value, comment saying where the value came from


def _env_int(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, int] | None:
    values = ((name, env.get(name, "").strip()) for name in names)
    return next(((name, int(v)) for name, v in values if v.isdigit() and int(v) > 0), None)


def _concurrency(found: Found, hints: Hints) -> Field:
    replicas, nouns = (found.copies, "copy copies") if found.component else (found.instance_count, "instance instances")
    batch = _env_int(found.env, hints.batch_env)
    if batch is None:
        return "max_concurrency", DEFAULT_CONCURRENCY, "default: no batch size setting in the environment"
    return "max_concurrency", batch[1] * replicas, f"{batch[0]} {batch[1]} x {replicas} {nouns.split()[replicas > 1]}"


def _chat_template(found: Found) -> Field | None:
    ids = [found.env[v] for v in _MODEL_ID_ENV if found.env.get(v)]
    return next((("chat_template", template, f"from {text}") for text in (*ids, *found.names)
                 for pattern, template in CHAT_TEMPLATE_RULES if re.search(pattern, text, re.IGNORECASE)), None)


def endpoint_fields(found: Found, rule: Rule) -> list[Field]:
    """The config keys of one jumpgate endpoint, each with the reason for its value."""
    hints = SCHEMA_HINTS.get(rule.schema, Hints())
    fields: list[Field] = [("endpoint_name", found.endpoint_name, ""), ("schema", rule.schema, rule.why),
                           ("instance_type", found.instance_type, ""),
                           ("instance_count", found.instance_count, "current instance count of the variant")]
    if cost.price_per_hour(found.instance_type, None) is None:
        fields.append(("price_per_hour", 0.0, f"SET BY HAND: no built-in price for {found.instance_type}: "
                                              "set the USD price per instance-hour"))
    fields.append(_concurrency(found, hints))
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


# --- rendering --------------------------------------------------------------------------------------
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def _yaml(value: Any) -> str:
    """A YAML scalar: plain when unambiguous, else JSON (a double-quoted string, a number, true / false)."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _line(indent: int, key: str, value: Any, comment: str = "") -> str:
    text = f"{' ' * indent}{_yaml(key)}: {_yaml(value)}"
    return f"{text}  # {comment}" if comment else text


def _unmatched(found: Found, schemas: tuple[str, ...]) -> Skipped:
    where = f'endpoint "{found.endpoint_name}" variant "{found.variant}"'
    where += f' inference component "{found.component}"' if found.component else ""
    routing = (f", target_variant: {found.variant}" if found.several_variants else "") + (
        f", inference_component: {found.component}" if found.component else "")
    return Skipped(where, f"image {found.image or '(none)'} matches no schema rule",
                   f"to serve it, add an endpoint with endpoint_name: {found.endpoint_name}{routing}, instance_type: "
                   f"{found.instance_type} and the schema its container speaks (one of {', '.join(schemas)})")


def _comments(found: Found) -> list[str]:
    price = cost.price_per_hour(found.instance_type, None)
    price_text = (f"${price:.4f}/h per instance (built-in table), ${price * found.instance_count:.4f}/h in all"
                  if price is not None else "no built-in price")
    lines = [f"image {found.image}", f"{found.instance_type} x {found.instance_count}: accelerator "
             f"{cost.accelerator_for(found.instance_type)}, {price_text}"]
    if found.component:
        lines.append("the variant's instances are shared by its inference components: each entry counts them all")
    return [f"    # {line}" for line in [*lines, *([found.note] if found.note else [])]]


def _unique(base: str, taken: set[str]) -> str:
    name = next(n for n in (base, *(f"{base}-{i}" for i in range(2, len(taken) + 3))) if n not in taken)
    taken.add(name)
    return name


def _sections(found: list[tuple[Found, Rule]]) -> list[str]:
    """The endpoints and models sections: one endpoint per variant or component, one model per SageMaker endpoint
    (over its variants, with their traffic weights) or per inference component."""
    lines, targets, taken = ["endpoints:"], dict[str, list[tuple[str, float]]](), set[str]()
    for f, rule in found:
        eid = _unique(f.component or (f"{f.endpoint_name}-{f.variant}" if f.several_variants else f.endpoint_name),
                      taken)
        lines += [f"  {_yaml(eid)}:", *_comments(f), *(_line(4, *kv) for kv in endpoint_fields(f, rule))]
        targets.setdefault(f.component or f.endpoint_name, []).append((eid, 1.0 if f.component else f.weight))
    lines.append("models:")
    for model, group in targets.items():
        some = any(w > 0 for _, w in group)  # all zero would route nothing: weigh them equally instead
        lines += [f"  {_yaml(model)}:", "    targets:",
                  *(f"      - {{endpoint: {_yaml(eid)}, weight: {w if some else 1:g}}}" for eid, w in group)]
    return lines


def render(discovery: Discovery, *, now: datetime | None = None, schemas: tuple[str, ...] | None = None) -> str:
    """The config text. Without any servable endpoint it holds only comments (and is not a valid config)."""
    if schemas is None:
        from service.adapters import schema_names

        schemas = schema_names()
    ruled = [(f, schema_rule(f)) for f in discovery.found]
    good = [(f, rule) for f, rule in ruled if rule is not None]
    skipped = [*discovery.skipped, *(_unmatched(f, schemas) for f, rule in ruled if rule is None)]
    lines = [f"# jumpgate config written by `jumpgate discover` for region {discovery.region} at "
             f"{(now or datetime.now(UTC)):%Y-%m-%dT%H:%M:%SZ}.",
             f"# {discovery.endpoints_seen} SageMaker endpoints listed: {len(good)} jumpgate endpoints, "
             f"{len(skipped)} skipped.",
             "# Schemas, context lengths and concurrency were inferred from container images and environments",
             "# (each value's comment says from what): review them. Prices come from the built-in us-east-1",
             "# table; set price_per_hour on each endpoint for other regions or negotiated prices."]
    for s in skipped:  # one greppable line each, then the hint wrapped
        lines += [f"# SKIPPED {s.where}: {s.why}.", *textwrap.wrap(
            s.hint + ".", 116, initial_indent="#   ", subsequent_indent="#   ", break_on_hyphens=False)]
    if good:
        lines += ["aws:", f"  region: {_yaml(discovery.region)}", *_sections(good)]
    return "\n".join(lines) + "\n"


def run_discover(region: str | None, profile: str | None = None, endpoint_url: str | None = None, *,
                 out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`jumpgate discover`: print the config to `out`; 0 when it has endpoints and validates, 1 when it has
    none or the account cannot be listed, 2 when no region or profile can be resolved."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        print(f"jumpgate discover: {exc}", file=err)
        return 2
    if not session.region_name:
        print("jumpgate discover: no region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION", file=err)
        return 2
    try:
        discovery = gather(session.client("sagemaker", endpoint_url=endpoint_url), session.region_name)
    except _AWS_ERRORS as exc:
        print(f"jumpgate discover: cannot list SageMaker endpoints in {session.region_name}: {aws_error(exc)}",
              file=err)
        return 1
    text = render(discovery)
    out.write(text)
    return _self_check(text, err)


def _self_check(text: str, err: TextIO) -> int:
    """The output must pass check-config; say so on stderr when it does not (a bug, or nothing to serve)."""
    from service.config import ConfigError, parse_config

    if (data := yaml.safe_load(text)) is None:
        print("jumpgate discover: no endpoint could be turned into a config; the comments above say why", file=err)
        return 1
    try:
        parse_config(data, source="<discover>")
    except ConfigError as exc:
        print(f"jumpgate discover: the config above does not validate:\n{exc}", file=err)
        return 1
    return 0
