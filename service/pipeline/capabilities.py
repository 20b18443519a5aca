"""An endpoint's capabilities: its adapter's declared features (service/adapters/features.py) resolved against the
endpoint's config (container facts, tool format), once, when the config is loaded.

- Native tools need what the declaration names: a container version (unset means a current container), a tool
  call parser, grammar support. Otherwise tools go through the prompt, in the endpoint's `tool_format`
  (default: `llama3_json` for the `llama3` chat template), or are refused when it has none.
- Constrained JSON needs the schema's grammar support and the container's (`container.grammar`).
- Images need a vision-language model (`container.vision`) behind a schema that carries them.
- The request body limit is the container's (`container.payload_limit`, else the schema's default), never above
  SageMaker's 6 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.adapters.base import Adapter
from service.adapters.features import SAGEMAKER_MAX_BODY, Features, ImageSupport, ToolSupport, lookup
from service.config.model import EndpointConfig
from service.prompts.tools import DEFAULT_FOR_TEMPLATE, TOOL_FORMATS, ToolFormat


@dataclass(frozen=True, slots=True)
class Capabilities:
    native_tools: bool = False
    native_required: bool = True
    tool_format: ToolFormat | None = None  # tools and JSON through the prompt (None: not possible)
    grammar: bool = False
    grammar_with_tools: bool = True
    images: ImageSupport = ImageSupport.NONE
    max_images: int = 1
    payload_limit: int = SAGEMAKER_MAX_BODY
    raw_prompts: bool = True


#: an endpoint that can take nothing but text (the default of endpoints built without a config)
TEXT_ONLY = Capabilities()


def resolve(adapter: Adapter, config: EndpointConfig) -> Capabilities:
    c = config.container
    features = lookup(adapter.features, c.kind, c.async_mode)
    return Capabilities(
        native_tools=_native_tools(features, config),
        native_required=features.required_native,
        tool_format=_tool_format(features, config),
        grammar=features.grammar and c.grammar,
        grammar_with_tools=features.grammar_with_tools,
        images=features.images if c.vision else ImageSupport.NONE,
        max_images=c.max_images,
        payload_limit=min(c.payload_limit or features.payload_limit, SAGEMAKER_MAX_BODY),
        raw_prompts=features.raw_prompts,
    )


def _native_tools(f: Features, config: EndpointConfig) -> bool:
    c = config.container
    if f.tools is not ToolSupport.NATIVE:
        return False
    if f.tools_need_parser and not c.tool_call_parser:
        return False
    if f.tools_need_grammar and not c.grammar:
        return False
    version = c.version_tuple()
    return not (f.tools_since and version and _padded(version) < _padded(_parse(f.tools_since)))


def _tool_format(f: Features, config: EndpointConfig) -> ToolFormat | None:
    if not f.prompts:
        return None
    name = config.tool_format or DEFAULT_FOR_TEMPLATE.get(config.chat_template or "")
    return TOOL_FORMATS.get(name or "")


def _parse(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return (*version, 0, 0, 0)[:3]
