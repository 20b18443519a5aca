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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3
import yaml
from botocore.exceptions import ProfileNotFound

from service.discover.estate import JUMPSTART_MODEL_ID_TAG, Scope, assume, group, jumpstart_id, scopes
from service.discover.rules import (  # re-exported: callers and tests import them from here
    _AWS_ERRORS,
    _UNSERVABLE,
    Discovery,
    Found,
    Rule,
    Skipped,
    endpoint_fields,
    schema_rule,
)
from service.telemetry import cost

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
            items += _endpoint(client, name, region) if status not in _UNSERVABLE else [
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


def _endpoint(client: Any, name: str, region: str) -> list[Item]:
    described = client.describe_endpoint(EndpointName=name)
    variants = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"]).get(
        "ProductionVariants", [])
    live = {v["VariantName"]: v for v in described.get("ProductionVariants", [])}
    seed = Found(endpoint_name=name, variant="", instance_type="", instance_count=1, region=region,
                 jumpstart_id=_jumpstart_id(client, described.get("EndpointArn")), several_variants=len(variants) > 1)
    return [item for pv in variants for item in _variant(client, seed, pv, live.get(pv["VariantName"], {}))]


def _jumpstart_id(client: Any, arn: str | None) -> str:
    """The JumpStart model id tag, when the endpoint has one; tags that cannot be read are not a reason to skip."""
    if not arn:
        return ""
    try:
        return jumpstart_id(client.list_tags(ResourceArn=arn).get("Tags", []))
    except _AWS_ERRORS:
        return ""


def _variant(client: Any, seed: Found, pv: Mapping[str, Any], live: Mapping[str, Any]) -> list[Item]:
    name = seed.endpoint_name
    where = f'endpoint "{name}" variant "{pv["VariantName"]}"'
    count = live.get("CurrentInstanceCount") or live.get("DesiredInstanceCount") or pv.get("InitialInstanceCount")
    serverless = pv.get("ServerlessConfig") or live.get("CurrentServerlessConfig") or {}
    if not pv.get("InstanceType") and not serverless.get("MemorySizeInMB"):
        return [Skipped(where, "it has neither an instance type nor a ServerlessConfig",
                        f"add it by hand with endpoint_name: {name}")]
    base = replace(seed, variant=pv["VariantName"], instance_type=pv.get("InstanceType") or "",
                   instance_count=max(int(count or 1), 1),
                   names=(*([seed.jumpstart_id] if seed.jumpstart_id else []), name),  # the model id first
                   weight=float(live.get("CurrentWeight", pv.get("InitialVariantWeight", 1.0))),
                   serverless_memory_mb=serverless.get("MemorySizeInMB"),
                   serverless_concurrency=serverless.get("MaxConcurrency"))
    if pv.get("ModelName"):
        return [_with_model(client, base, pv["ModelName"], live, where)]
    return _components(client, base, where)


def _with_model(client: Any, base: Found, model: str, live: Mapping[str, Any], where: str) -> Item:
    named = replace(base, names=(*base.names, model))
    try:
        described = client.describe_model(ModelName=model)
        image, env = container_of(described)
    except _AWS_ERRORS as exc:
        deployed = [d["SpecifiedImage"] for d in live.get("DeployedImages", []) if d.get("SpecifiedImage")]
        why = f"its model {model!r} could not be described ({aws_error(exc)})"
        if not deployed:
            return Skipped(where, why + " and the endpoint reports no deployed image",
                           f"add it by hand with endpoint_name: {base.endpoint_name} and the schema it speaks")
        return replace(named, image=deployed[0], note=why + ": environment unknown, defaults used")
    env = {**env, **base.env}  # a component's own env wins over its model's
    return replace(named, image=image, env=env, model_data=model_data_of(described, env))


def container_of(model: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Image and environment of a DescribeModel answer: the primary container, else the first of `Containers`."""
    container = model.get("PrimaryContainer") or {}
    if not container.get("Image"):
        container = (model.get("Containers") or [{}])[0]
    return container.get("Image", ""), dict(container.get("Environment") or {})


def model_data_of(model: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Where the model's weights come from: the S3 model data, else a Hub model id (not a local path)."""
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    s3 = ((container.get("ModelDataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
    hub = next((env[v] for v in ("HF_MODEL_ID", "OPTION_MODEL_ID", "MODEL_ID") if env.get(v)), "")
    return str(container.get("ModelDataUrl") or s3 or ("" if hub.startswith("/") else hub))


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
    lines = [f"image {found.image}", _capacity_comment(found)]
    if found.jumpstart_id:
        lines.append(f"JumpStart model {found.jumpstart_id} (tag {JUMPSTART_MODEL_ID_TAG})")
    if found.component:
        lines.append("the variant's instances are shared by its inference components: each entry counts them all")
    return [f"    # {line}" for line in [*lines, *([found.note] if found.note else [])]]


def _capacity_comment(found: Found) -> str:
    if found.serverless_memory_mb is not None:
        per_s = cost.Serverless.from_table(found.serverless_memory_mb).per_second
        return (f"serverless, {found.serverless_memory_mb} MB: accelerator cpu, ${per_s:.7f} per second of compute "
                f"plus data processed (built-in us-east-1 prices)")
    price = cost.price_per_hour(found.instance_type, None)
    price_text = (f"${price:.4f}/h per instance (built-in table), ${price * found.instance_count:.4f}/h in all"
                  if price is not None else "no built-in price")
    accelerator = cost.accelerator_for(found.instance_type)
    return f"{found.instance_type} x {found.instance_count}: accelerator {accelerator}, {price_text}"


def _unique(base: str, taken: set[str]) -> str:
    name = next(n for n in (base, *(f"{base}-{i}" for i in range(2, len(taken) + 3))) if n not in taken)
    taken.add(name)
    return name


def _endpoint_id(f: Found, taken: set[str]) -> str:
    """The variant's (or component's) name; the same name found in another region or account gets the region."""
    base = f.component or (f"{f.endpoint_name}-{f.variant}" if f.several_variants else f.endpoint_name)
    return _unique(base if base not in taken else f"{base}-{f.region}" if f.region else base, taken)


def _sections(found: list[tuple[Found, Rule]]) -> list[str]:
    """The endpoints and models sections: one endpoint per variant or component; one model per model served
    (service/discover/estate.py: merged across regions and accounts by JumpStart id, or image and model data),
    else per SageMaker endpoint (over its variants, with their traffic weights) or per inference component."""
    lines, taken, members = ["endpoints:"], set[str](), list[tuple[Found, str]]()
    for f, rule in found:
        eid = _endpoint_id(f, taken)
        lines += [f"  {_yaml(eid)}:", *_comments(f), *(_line(4, *kv) for kv in endpoint_fields(f, rule))]
        members.append((f, eid))
    lines.append("models:")
    names: set[str] = set()
    for g in group(members):
        comment = f"  # {g.comment()}" if g.comment() else ""
        lines += [f"  {_yaml(_unique(g.name, names))}:{comment}", "    targets:",
                  *(f"      - {{endpoint: {_yaml(eid)}, weight: {w:g}}}" for eid, w in g.targets())]
    return lines


def render(discovery: Discovery | Sequence[Discovery], *, now: datetime | None = None,
           schemas: tuple[str, ...] | None = None) -> str:
    """The config text for one or several scans (regions, accounts). Without any servable endpoint it holds only
    comments (and is not a valid config)."""
    if schemas is None:
        from service.adapters import schema_names

        schemas = schema_names()
    scans = [discovery] if isinstance(discovery, Discovery) else list(discovery)
    ruled = [(f, schema_rule(f)) for d in scans for f in d.found]
    good = [(f, rule) for f, rule in ruled if rule is not None]
    skipped = [*(s if len(scans) == 1 else s._replace(where=f"{s.where} in {_scope(d)}")
                 for d in scans for s in d.skipped),
               *(_unmatched(f, schemas) for f, rule in ruled if rule is None)]
    lines = [*_header(scans, now, len(good), len(skipped))]
    for s in skipped:  # one greppable line each, then the hint wrapped
        lines += [f"# SKIPPED {s.where}: {s.why}.", *textwrap.wrap(
            s.hint + ".", 116, initial_indent="#   ", subsequent_indent="#   ", break_on_hyphens=False)]
    if good:
        lines += ["aws:", f"  region: {_yaml(scans[0].region)}", *_sections(good)]
    return "\n".join(lines) + "\n"


def _scope(d: Discovery) -> str:
    return d.region + (f" through role {d.role_arn}" if d.role_arn else "")


def _header(scans: list[Discovery], now: datetime | None, good: int, skipped: int) -> list[str]:
    where = (f"region {scans[0].region}" if len(scans) == 1 and not scans[0].role_arn
             else "; ".join(_scope(d) for d in scans))
    return [f"# jumpgate config written by `jumpgate discover` for {where} at "
            f"{(now or datetime.now(UTC)):%Y-%m-%dT%H:%M:%SZ}.",
            f"# {sum(d.endpoints_seen for d in scans)} SageMaker endpoints listed: {good} jumpgate endpoints, "
            f"{skipped} skipped.",
            "# Schemas, context lengths and concurrency were inferred from container images and environments",
            "# (each value's comment says from what): review them. Prices come from the built-in us-east-1",
            "# table; set price_per_hour on each endpoint for other regions or negotiated prices."]


def run_discover(region: str | Sequence[str] | None, profile: str | None = None, endpoint_url: str | None = None,
                 *, role_arns: Sequence[str] = (), out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`jumpgate discover`: scan each region, in the caller's account and through each role, and print one config
    to `out`; 0 when it has endpoints and validates, 1 when it has none or nothing could be listed, 2 when no
    region or profile can be resolved. A scope that cannot be listed is reported and the others still scanned."""
    out, err = out or sys.stdout, err or sys.stderr
    regions = [region] if isinstance(region, str) else list(region or [])
    try:
        session = boto3.Session(profile_name=profile, region_name=regions[0] if regions else None)
    except ProfileNotFound as exc:
        print(f"jumpgate discover: {exc}", file=err)
        return 2
    if not session.region_name:
        print("jumpgate discover: no region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION", file=err)
        return 2
    scans = [d for scope in scopes(regions or [session.region_name], role_arns)
             if (d := _scan(session, scope, endpoint_url, err)) is not None]
    if not scans:
        return 1
    text = render(scans)
    out.write(text)
    return _self_check(text, err)


def _scan(session: Any, scope: Scope, endpoint_url: str | None, err: TextIO) -> Discovery | None:
    try:
        scoped = assume(session, scope.role_arn) if scope.role_arn else session
        client = scoped.client("sagemaker", region_name=scope.region, endpoint_url=endpoint_url)
        discovery = gather(client, scope.region)
    except _AWS_ERRORS as exc:
        print(f"jumpgate discover: cannot list SageMaker endpoints in {scope.describe()}: {aws_error(exc)}", file=err)
        return None
    found = tuple(replace(f, role_arn=scope.role_arn) for f in discovery.found)
    return discovery._replace(found=found, role_arn=scope.role_arn)


def _self_check(text: str, err: TextIO) -> int:
    """The output must pass check-config; say so on stderr when it does not (a bug, or nothing to serve)."""
    from service.config.model import parse_config
    from service.config.problems import ConfigError

    if (data := yaml.safe_load(text)) is None:
        print("jumpgate discover: no endpoint could be turned into a config; the comments above say why", file=err)
        return 1
    try:
        parse_config(data, source="<discover>")
    except ConfigError as exc:
        print(f"jumpgate discover: the config above does not validate:\n{exc}", file=err)
        return 1
    return 0
