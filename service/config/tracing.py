"""The `tracing` config section (an addition to the DESIGN.md contract; optional).

```yaml
tracing:
  otlp_endpoint: http://otel-collector:4318/v1/traces   # http/protobuf: the traces URL; grpc: host:port
  protocol: http/protobuf                                # or grpc (needs `pip install 'jumpgate[grpc]'`)
  sample_rate: 0.1                                       # of requests without a sampled parent (W3C traceparent)
  headers: {authorization: "Bearer ${OTEL_TOKEN}"}       # sent with every export
  service_name: jumpgate
```
Without this section, tracing is on only when the standard OpenTelemetry variables ask for it
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_EXPORTER_OTLP_PROTOCOL,
OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME are read by the SDK); OTEL_SDK_DISABLED
turns it off either way.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TracingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    otlp_endpoint: str = Field(min_length=1)
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    sample_rate: float = Field(1.0, ge=0, le=1)
    headers: dict[str, str] = {}
    service_name: str = Field("jumpgate", min_length=1, max_length=100)

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not a URL or host:port")
        return value

    @model_validator(mode="after")
    def _grpc_installed(self) -> TracingConfig:
        if self.protocol == "grpc" and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
            raise ValueError("protocol grpc needs the gRPC exporter: pip install 'jumpgate[grpc]' (or use "
                             "http/protobuf)")
        return self
