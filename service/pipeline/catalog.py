"""The resolved runtime view of a config: endpoints with their adapter, target, price and prompt spec,
and models with their weighted targets. Built once at config load, so nothing on the request path
looks anything up by name except the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service import adapters
from service.adapters.base import Adapter
from service.adapters.params import Policy
from service.canonical import SamplingParams
from service.config.model import DEFAULT_MAX_NEW_TOKENS, Config, EndpointConfig, ModelConfig
from service.config.resilience import ShadowConfig
from service.errors import ModelNotFound, echo
from service.pipeline.capabilities import TEXT_ONLY, Capabilities, resolve
from service.pipeline.tokens import ESTIMATE, LocalTokenizer, TokenCounter
from service.prompts.render import PromptSpec
from service.telemetry import cost
from service.transport.base import Target


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
    capabilities: Capabilities = TEXT_ONLY

    @property
    def endpoint_price_per_hour(self) -> float:
        return self.price_per_hour * self.instance_count


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


def build_catalog(config: Config) -> Catalog:
    endpoints = {eid: _endpoint(eid, ep) for eid, ep in config.endpoints.items()}
    models = {name: _model(name, m, endpoints) for name, m in config.models.items()}
    return Catalog(endpoints, models)


def _endpoint(eid: str, ep: EndpointConfig) -> Endpoint:
    price = cost.price_per_hour(ep.instance_type, ep.price_per_hour)
    adapter = adapters.get(ep.schema_)
    return Endpoint(
        id=eid,
        schema=ep.schema_,
        adapter=adapter,
        target=Target(ep.endpoint_name, ep.timeout_s, ep.custom_attributes, ep.target_variant,
                      ep.inference_component),
        spec=PromptSpec(ep.chat_template, ep.prompt_template),
        instance_type=ep.instance_type,
        instance_count=ep.instance_count,
        price_per_hour=price or 0.0,
        accelerator=cost.accelerator_for(ep.instance_type),
        max_concurrency=ep.max_concurrency,
        context_length=ep.context_length,
        max_wait_s=ep.max_wait_s,
        counter=LocalTokenizer(ep.tokenizer) if ep.tokenizer else ESTIMATE,
        capabilities=resolve(adapter, ep),
    )


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
