"""What is known about the container behind an endpoint (an addition to the DESIGN.md config contract).

The payload `schema` says how to talk to an endpoint; these facts say what its container can do, so the
capabilities the gateway relies on (native tool calling, grammar, logprobs, images, embedding batch limits)
are declared data, never guessed from a schema name. Every key is optional; the defaults describe the
container versions the demo and the simulator play.

```yaml
endpoints:
  llama31-8b-lmi:
    schema: openai
    container:
      kind: lmi                     # tgi | lmi | lmi-neuron | meta-llama | text2text | tei | jumpstart-embedding
      version: "0.33.0"             # container version: selects its documented wire quirks
      async_mode: true              # LMI vLLM async mode (opt-in from 0.33, the default from 0.35)
      tool_call_parser: llama3_json # LMI vLLM: OPTION_ENABLE_AUTO_TOOL_CHOICE + OPTION_TOOL_CALL_PARSER are set
      grammar: true                 # TGI: false when launched with --disable-grammar-support
      vision: false                 # a vision-language model (Llama 3.2 Vision)
      max_images: 1                 # images per prompt the model accepts
      max_top_logprobs: 5           # TGI MAX_TOP_N_TOKENS / vLLM max_logprobs, when launched with another value
      payload_limit: 2000000        # request bytes the container accepts (TGI PAYLOAD_LIMIT; default per schema)
      max_batch_size: 32            # TEI --max-client-batch-size: inputs per call
      matryoshka: false             # embeddings may be truncated to `dimensions` and re-normalized
```
The simulator reads the same section to decide how the simulated container behaves.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ContainerKind = Literal["tgi", "lmi", "lmi-neuron", "meta-llama", "text2text", "tei", "jumpstart-embedding"]

_VERSION = re.compile(r"\d+(\.\d+){0,2}")


class ContainerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ContainerKind | None = None
    version: str | None = None
    async_mode: bool = False
    tool_call_parser: str | None = Field(None, pattern=r"^[a-z0-9_]{1,40}$")
    grammar: bool = True
    vision: bool = False
    max_images: int = Field(1, ge=1, le=32)
    max_top_logprobs: int | None = Field(None, ge=0, le=20)
    payload_limit: int | None = Field(None, ge=1024, le=6 * 1024 * 1024)
    max_batch_size: int = Field(32, ge=1, le=2048)
    matryoshka: bool = False

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # YAML reads 3.2 as a float: keep it as the string the user meant
        if isinstance(value, str) and not _VERSION.fullmatch(value):
            raise ValueError(f"{value!r} is not a version such as 3.2.0")
        return value

    def variant(self) -> str:
        """How adapters key their per-container declarations: the kind, `-async` for LMI async mode; `*` when
        the config does not say."""
        if self.kind is None:
            return "*"
        return f"{self.kind}-async" if self.async_mode else self.kind

    def version_tuple(self) -> tuple[int, ...] | None:
        return tuple(int(p) for p in self.version.split(".")) if self.version else None
