"""Paths moto cannot create: endpoints hosting inference components, serverless and failed endpoints, a deleted
model whose image the endpoint still reports. A fake control plane answers with botocore-shaped dicts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from service.config.model import Config, parse_config
from service.discover import scan as discover

TGI = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.4.0-tgi2.4.0-gpu-py311"
HF = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1.0-transformers4.37.0-gpu-py310"


def _missing(operation: str, what: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": f"Could not find {what}."}}, operation)


class FakeSageMaker:
    """The six control-plane calls discover makes, over canned answers; list calls page one item at a time."""

    def __init__(self) -> None:
        self.endpoints = {
            "ic-endpoint": ("InService", [{"VariantName": "AllTraffic", "CurrentInstanceCount": 2}],
                            [{"VariantName": "AllTraffic", "InstanceType": "ml.g5.12xlarge",
                              "InitialInstanceCount": 1}]),
            "serverless": ("InService", [{"VariantName": "AllTraffic"}],
                           [{"VariantName": "AllTraffic", "ModelName": "m",
                             "ServerlessConfig": {"MemorySizeInMB": 6144}}]),
            "broken": ("Failed", [], []),
            "model-gone": ("InService", [{"VariantName": "AllTraffic", "CurrentInstanceCount": 1,
                                          "DeployedImages": [{"SpecifiedImage": TGI}]}],
                           [{"VariantName": "AllTraffic", "ModelName": "deleted-model",
                             "InstanceType": "ml.g5.2xlarge", "InitialInstanceCount": 1}]),
        }
        self.models = {"huggingface-text2text-flan-t5-large-model": {
            "PrimaryContainer": {"Image": HF, "Environment": {"HF_TASK": "text2text-generation"}}}}
        self.components: dict[str, dict[str, Any]] = {
            "llama3-ic": {"Specification": {"Container": {"DeployedImage": {"SpecifiedImage": TGI}, "Environment": {
                "HF_MODEL_ID": "meta-llama/Llama-3.1-8B-Instruct", "MAX_TOTAL_TOKENS": "8192",
                "MAX_CONCURRENT_REQUESTS": "8"}}}, "RuntimeConfig": {"CurrentCopyCount": 3}},
            "flan-ic": {"Specification": {"ModelName": "huggingface-text2text-flan-t5-large-model"},
                        "RuntimeConfig": {"CurrentCopyCount": 1}},
        }
        self.listed_components = ["llama3-ic", "flan-ic", "vanished-ic"]

    @staticmethod
    def _page(items: list[Any], key: str, token: str | None) -> dict[str, Any]:
        i = int(token or 0)
        return {key: items[i:i + 1], **({"NextToken": str(i + 1)} if i + 1 < len(items) else {})}

    def list_endpoints(self, MaxResults: int, NextToken: str | None = None) -> dict[str, Any]:
        items = [{"EndpointName": n, "EndpointStatus": s} for n, (s, _, _) in self.endpoints.items()]
        return self._page(items, "Endpoints", NextToken)

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        return {"EndpointConfigName": f"{EndpointName}-config", "ProductionVariants": self.endpoints[EndpointName][1]}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:
        return {"ProductionVariants": self.endpoints[EndpointConfigName.removesuffix("-config")][2]}

    def describe_model(self, ModelName: str) -> dict[str, Any]:
        if ModelName not in self.models:
            raise _missing("DescribeModel", f"model {ModelName}")
        return self.models[ModelName]

    def list_inference_components(self, EndpointNameEquals: str, VariantNameEquals: str,
                                  NextToken: str | None = None) -> dict[str, Any]:
        assert (EndpointNameEquals, VariantNameEquals) == ("ic-endpoint", "AllTraffic")
        items = [{"InferenceComponentName": n} for n in self.listed_components]
        return self._page(items, "InferenceComponents", NextToken)

    def describe_inference_component(self, InferenceComponentName: str) -> dict[str, Any]:
        if InferenceComponentName not in self.components:
            raise _missing("DescribeInferenceComponent", f"inference component {InferenceComponentName}")
        return self.components[InferenceComponentName]


@pytest.fixture(scope="module")
def text() -> str:
    return discover.render(discover.gather(FakeSageMaker(), "eu-west-1", page_size=1))


@pytest.fixture(scope="module")
def config(text: str) -> Config:
    return parse_config(yaml.safe_load(text), source="<discover>")


def test_each_inference_component_is_an_endpoint_and_a_model(config: Config) -> None:
    llama, flan = config.endpoints["llama3-ic"], config.endpoints["flan-ic"]
    assert (llama.endpoint_name, llama.inference_component, llama.target_variant) == ("ic-endpoint", "llama3-ic", None)
    assert (llama.schema_, llama.context_length, llama.chat_template) == ("tgi", 8192, "llama3")
    assert llama.max_concurrency == 24  # MAX_CONCURRENT_REQUESTS 8 x 3 copies
    assert (llama.instance_type, llama.instance_count) == ("ml.g5.12xlarge", 2)
    assert (flan.schema_, flan.inference_component) == ("text2text", "flan-ic")  # image and env from its model
    assert {name: [t.endpoint for t in m.targets] for name, m in config.models.items()
            if name.endswith("-ic")} == {"llama3-ic": ["llama3-ic"], "flan-ic": ["flan-ic"]}
    assert config.aws.region == "eu-west-1"


def test_a_deleted_model_falls_back_to_the_deployed_image(config: Config, text: str) -> None:
    ep = config.endpoints["model-gone"]
    assert (ep.schema_, ep.context_length, ep.max_concurrency) == ("tgi", None, 32)
    assert "# its model 'deleted-model' could not be described (ValidationException: Could not find" in text


@pytest.mark.parametrize(("where", "why"), [
    ('endpoint "broken"', "its status is Failed"),
    # serverless variants are discovered now (tests/discover/test_estate_moto.py); this one's model is gone
    ('endpoint "serverless" variant "AllTraffic"', "its model 'm' could not be described"),
    ('endpoint "ic-endpoint" variant "AllTraffic" inference component "vanished-ic"',
     "could not be described (ValidationException: Could not find inference component vanished-ic.)"),
])
def test_what_cannot_be_served_is_listed_with_the_reason(text: str, where: str, why: str) -> None:
    assert f"# SKIPPED {where}: {why}" in text
