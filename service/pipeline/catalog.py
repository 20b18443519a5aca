"""The resolved runtime view of a config: endpoints with their adapter, target, price and prompt spec,
and models with their weighted targets. Built once at config load, so nothing on the request path
looks anything up by name except the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service import adapters
from service.adapters.base import Adapter
from service.adapters.params import Policy
from service.canonical import SamplingParams
from service.config.aws import credential_spec, runtime_url_for
from service.config.model import DEFAULT_MAX_NEW_TOKENS, AwsConfig, Config, EndpointConfig, ModelConfig
from service.config.resilience import ShadowConfig
from service.errors import ModelNotFound, echo
from service.pipeline.capabilities import TEXT_ONLY, Capabilities, resolve
from service.pipeline.tokens import ESTIMATE, LocalTokenizer, TokenCounter
from service.prompts.render import PromptSpec
from service.telemetry import cost
from service.transport.base import CredentialSpec, Target


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    schema: str
    adapter: Adapter
    target: Target
    spec: PromptSpec
    instance_type: str
    instance_count: int
    price_per_hour: float  # for one instance
    accelerator: str
    max_concurrency: int
    context_length: int | None
    max_wait_s: float = 1.0
    counter: TokenCounter = ESTIMATE
    #: the AWS region the endpoint lives in (its SigV4 scope) and where its credentials come from (no secret)
    region: str = ""
    credentials: str = "chain"
    #: streamed with InvokeEndpointWithResponseStream: the adapter can, and the endpoint is not serverless
    #: (serverless endpoints answer the stream API with an error; see service/simulator/estate.py)
    can_stream: bool = True
    serverless_memory_mb: int | None = None
    #: how long a request may wait for an inference component scaled to zero to get a copy (0: fall back at once)
    scale_from_zero_wait_s: float = 0.0
    #: how a request's cost is attributed (service/telemetry/cost.py); build_catalog always sets it
    price: cost.PriceModel = field(default_factory=lambda: cost.InstanceHours(0.0))
    capabilities: Capabilities = TEXT_ONLY

    @property
    def endpoint_price_per_hour(self) -> float:
        """What the endpoint costs per hour whether or not requests arrive (0 for serverless)."""
        return self.price.hourly


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    targets: tuple[tuple[Endpoint, float], ...]
    defaults: SamplingParams
    policy: Policy
    shadow: ShadowConfig | None = None
    invalid_output_retries: int = 1


@dataclass(frozen=True, slots=True)
class Catalog:
    endpoints: Mapping[str, Endpoint]
    models: Mapping[str, Model]

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ModelNotFound(f"model {echo(name)} does not exist; available models: {known}",
                                param="model") from None


#: instance_type (a metric label) of a serverless endpoint, which has no instance type
SERVERLESS_INSTANCE_TYPE = "serverless"


def build_catalog(config: Config) -> Catalog:
    endpoints = {eid: _endpoint(eid, ep, config.aws) for eid, ep in config.endpoints.items()}
    models = {name: _model(name, m, endpoints) for name, m in config.models.items()}
    return Catalog(endpoints, models)


def _endpoint(eid: str, ep: EndpointConfig, aws: AwsConfig) -> Endpoint:
    instance_type = ep.instance_type or SERVERLESS_INSTANCE_TYPE
    price = cost.price_per_hour(instance_type, ep.price_per_hour) or 0.0
    adapter = adapters.get(ep.schema_)
    credentials = credential_spec(ep.credentials, aws.credentials)
    return Endpoint(
        id=eid,
        schema=ep.schema_,
        adapter=adapter,
        target=_target(ep, aws, credentials),
        spec=PromptSpec(ep.chat_template, ep.prompt_template),
        instance_type=instance_type,
        instance_count=ep.instance_count,
        price_per_hour=price,
        # Serverless Inference runs on CPUs only (AWS developer guide, "Serverless Inference", feature exclusions).
        accelerator="cpu" if ep.serverless else cost.accelerator_for(instance_type),
        max_concurrency=ep.max_concurrency,
        context_length=ep.context_length,
        max_wait_s=ep.max_wait_s,
        counter=LocalTokenizer(ep.tokenizer) if ep.tokenizer else ESTIMATE,
        region=ep.region or aws.region,
        credentials=credentials.label(),
        can_stream=adapter.can_stream and ep.serverless is None,
        serverless_memory_mb=ep.serverless.memory_mb if ep.serverless else None,
        scale_from_zero_wait_s=ep.scale_from_zero_wait_s,
        price=(cost.Serverless.from_table(ep.serverless.memory_mb) if ep.serverless
               else cost.InstanceHours(price, ep.instance_count, ep.max_concurrency)),
        capabilities=resolve(adapter, ep),
    )


def _target(ep: EndpointConfig, aws: AwsConfig, credentials: CredentialSpec) -> Target:
    """An endpoint with a region of its own is called at that region's runtime URL (unless it names one) and
    signed for that region; without one, at aws.runtime_url for aws.region, as before."""
    region = ep.region or aws.region
    url = ep.runtime_url or (runtime_url_for(ep.region) if ep.region else aws.runtime_url)
    return Target(ep.endpoint_name, ep.timeout_s, ep.custom_attributes, ep.target_variant, ep.inference_component,
                  region=region, runtime_url=url, credentials=credentials)


def _model(name: str, m: ModelConfig, endpoints: Mapping[str, Endpoint]) -> Model:
    defaults = m.defaults.to_sampling()
    if defaults.max_new_tokens is None:
        defaults = SamplingParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS).with_defaults(defaults)
    return Model(
        name=name,
        targets=tuple((endpoints[t.endpoint], t.weight) for t in m.targets if t.weight > 0),
        defaults=defaults,
        policy=m.unsupported_params,
        shadow=m.shadow,
        invalid_output_retries=m.invalid_output_retries,
    )
