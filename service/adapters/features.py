"""What a payload schema can carry besides text: tool calls, constrained JSON output, images. Declared as data by
each adapter, per container kind (the endpoint config's `container.kind`; `ANY` for every kind), and resolved
against the endpoint's container facts when the config is loaded (service/pipeline/capabilities.py).

Facts behind the declarations (openai-surface.md sections 0.1, 1-4, 8):
- TGI Messages API: native tools (grammar-constrained, one call per turn), usable as OpenAI's from 2.4.0 (`no_tool`
  lets the model answer in words) and only with grammar support; TGI's own `response_format` `{type, value}`;
  tools and `response_format` together are refused (422); image parts on vision-language models.
- TGI generate: no tools (Meta's formats are rendered into the prompt), `parameters.grammar` for JSON Schema,
  images as markdown `![](data:...)` in `inputs`.
- LMI vLLM chat: native tools only with a tool parser declared on the endpoint; `required` refused by rolling batch
  (vLLM's own server in async mode takes it); no documented `response_format`; image parts on VLMs. Rolling batch
  reads `messages` or `inputs` only, so a bare `prompt` (completions) needs async mode (vLLM's completions).
- LMI `inputs`, NeuronX, the Meta container: text only; tools and JSON through the prompt. FLAN-T5: nothing.
Body limits: SageMaker takes 6 MiB per request; TGI refuses bodies over PAYLOAD_LIMIT (2,000,000 bytes by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

ANY = "*"
SAGEMAKER_MAX_BODY = 6 * 1024 * 1024
TGI_PAYLOAD_LIMIT = 2_000_000


class ToolSupport(StrEnum):
    NATIVE = "native"  # the container takes OpenAI `tools` and answers `tool_calls`
    PROMPT = "prompt"  # the gateway renders the model's tool format into the prompt and parses the answer
    NONE = "none"


class ImageSupport(StrEnum):
    PARTS = "parts"        # OpenAI `image_url` content parts in `messages`
    MARKDOWN = "markdown"  # `![](data:...)` in the prompt text (TGI generate)
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Features:
    """One schema's capabilities on one container kind. The `*_need_*` / `*_since` fields name container facts
    that must hold for the native path; when they do not, tools fall back to the prompt (if the endpoint has a
    tool format) and JSON to instructions."""

    tools: ToolSupport = ToolSupport.PROMPT
    tools_since: str | None = None      # container version from which native tools behave as OpenAI's
    tools_need_parser: bool = False     # a tool call parser declared on the endpoint (LMI vLLM)
    tools_need_grammar: bool = False    # grammar support on (TGI: tools are grammar-constrained)
    required_native: bool = True        # tool_choice `required` works natively
    grammar: bool = False               # JSON Schema constrained decoding, when the container's grammar is on
    grammar_with_tools: bool = True     # both in one request
    prompts: bool = True                # tools and JSON may be emulated through the prompt
    images: ImageSupport = ImageSupport.NONE
    payload_limit: int = SAGEMAKER_MAX_BODY
    raw_prompts: bool = True            # a prompt without messages (completions, native generate) can be sent


FeatureTable = Mapping[str, Features]


def lookup(table: FeatureTable, kind: str | None, async_mode: bool = False) -> Features:
    """The declaration for a container: `<kind>-async` in async mode, then `<kind>`, then `ANY`."""
    for key in ((f"{kind}-async",) if async_mode else ()) + ((kind,) if kind else ()) + (ANY,):
        if key in table:
            return table[key]
    return Features(prompts=False, tools=ToolSupport.NONE)
