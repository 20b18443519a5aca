"""OpenTelemetry traces: one SERVER span per request, one CLIENT span per upstream attempt (retries and fallbacks
are siblings under the request's span), W3C `traceparent` / `tracestate` taken from the client, exported over OTLP.

Attributes follow the OpenTelemetry GenAI semantic conventions (`gen_ai.operation.name`, request and response
model, input and output token usage, finish reasons, `server.address`) plus jumpgate's own (`jumpgate.endpoint`,
schema, accelerator, region, attempt, cost, token source). Prompts and completions are never put in a span. A
stream's time to first token is an event on the request span (and `gen_ai.response.time_to_first_chunk`).

Off unless configured (`tracing:` in the config, or the standard OTEL_* variables): then no span is ever made and
the request path only checks `trace.span is None`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.telemetry.trace import Trace

#: gen_ai.operation.name per API (the semantic conventions' well-known values)
OPERATIONS = {"chat": "chat", "completions": "text_completion", "generate": "text_completion",
              "embeddings": "embeddings"}
PROVIDER = "aws.sagemaker"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


class TracingOptions(Protocol):
    """The config's `tracing` section (service/config/tracing.py), as this module reads it."""

    @property
    def otlp_endpoint(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def sample_rate(self) -> float: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def service_name(self) -> str: ...


class _Target(Protocol):
    @property
    def endpoint_name(self) -> str: ...
    @property
    def runtime_url(self) -> str | None: ...


class Called(Protocol):
    """The endpoint an attempt calls (the pipeline's catalog Endpoint), as its span describes it."""

    @property
    def id(self) -> str: ...
    @property
    def schema(self) -> str: ...
    @property
    def accelerator(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def target(self) -> _Target: ...


class Tracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("jumpgate")

    def start_request(self, trace: Trace, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """The request's SERVER span, child of the client's span when it sent a traceparent."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _TRACE_HEADERS}
        operation = OPERATIONS.get(trace.api, trace.api)
        span = self.tracer.start_span(operation, context=_PROPAGATOR.extract(carrier), kind=SpanKind.SERVER,
                                      attributes={"gen_ai.operation.name": operation, "jumpgate.api": trace.api,
                                                  "jumpgate.request_id": trace.request_id})
        trace.span = span
        context = span.get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            trace.trace_id = format(context.trace_id, "032x")

    def start_attempt(self, trace: Trace, endpoint: Called, attempt: int) -> Span | None:
        """A CLIENT span for one upstream call."""
        parent = trace.span
        if parent is None or not parent.get_span_context().trace_flags.sampled:
            return None
        target = endpoint.target
        address = urlsplit(target.runtime_url or "")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATIONS.get(trace.api, trace.api), "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": trace.model, "server.address": address.hostname or "",
            "jumpgate.endpoint": endpoint.id, "jumpgate.endpoint_name": target.endpoint_name,
            "jumpgate.schema": endpoint.schema, "jumpgate.accelerator": endpoint.accelerator,
            "jumpgate.region": endpoint.region, "jumpgate.attempt": attempt,
        }
        if address.port:
            attributes["server.port"] = address.port
        span: Span = self.tracer.start_span(f"{attributes['gen_ai.operation.name']} {endpoint.id}",
                                            context=set_span_in_context(parent), kind=SpanKind.CLIENT,
                                            attributes=attributes)
        return span

    def shutdown(self) -> None:
        """Export what is buffered, then stop (the app's shutdown)."""
        self.provider.shutdown()


def end_attempt(span: Span | None, error: BaseException | None = None) -> None:
    if span is None:
        return
    if error is not None:
        code = getattr(error, "code", None) or type(error).__name__
        span.set_attribute("error.type", str(code))
        span.set_status(Status(StatusCode.ERROR, str(code)))
    span.end()


def first_token(trace: Trace, seconds: float) -> None:
    span = trace.span
    if span is not None:
        span.add_event("gen_ai.first_token", {"gen_ai.response.time_to_first_chunk": seconds})
        span.set_attribute("gen_ai.response.time_to_first_chunk", seconds)


def finish_request(trace: Trace) -> None:
    """End the request's span with what the request came to (called once, by the api's Finisher)."""
    span = trace.span
    if span is None:
        return
    operation = OPERATIONS.get(trace.api, trace.api)
    span.update_name(f"{operation} {trace.model}")
    attributes: dict[str, Any] = {
        "gen_ai.request.model": trace.model, "gen_ai.response.model": trace.model,
        "http.response.status_code": trace.status, "jumpgate.endpoint": trace.endpoint,
        "jumpgate.schema": trace.schema, "jumpgate.accelerator": trace.accelerator, "jumpgate.region": trace.region,
        "jumpgate.tenant": trace.tenant, "jumpgate.cost_usd": trace.cost_usd, "jumpgate.stream": trace.stream,
    }
    if trace.usage is not None:
        attributes |= {"gen_ai.usage.input_tokens": trace.usage.prompt_tokens,
                       "gen_ai.usage.output_tokens": trace.usage.completion_tokens,
                       "jumpgate.token_source": trace.usage.source.value}
    if trace.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(trace.finish_reasons)
    span.set_attributes(attributes)
    if trace.error is not None:
        span.set_attribute("error.type", trace.error)
        if trace.status >= 500:
            span.set_status(Status(StatusCode.ERROR, trace.error))
    span.end()


def build_tracing(cfg: TracingOptions | None, environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """The tracer provider the config (or the OTEL_* environment) asks for, or None: tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if cfg is None and not (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                            or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    # process.pid tells the workers of `jumpgate serve --workers N` apart (each builds its own provider)
    resource = Resource.create({"process.pid": os.getpid(),
                                **({"service.name": cfg.service_name} if cfg is not None else {})})
    # Sampling: the client's decision when it sent a traceparent; otherwise sample_rate (or OTEL_TRACES_SAMPLER).
    sampler = ParentBased(TraceIdRatioBased(cfg.sample_rate)) if cfg is not None else None
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(_exporter(cfg, environ)))
    return Tracing(provider)


def _exporter(cfg: TracingOptions | None, environ: Mapping[str, str]) -> SpanExporter:
    protocol = cfg.protocol if cfg is not None else environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                                               environ.get("OTEL_EXPORTER_OTLP_PROTOCOL",
                                                                           "http/protobuf"))
    kwargs: dict[str, Any] = {}
    if cfg is not None:
        kwargs = {"endpoint": cfg.otlp_endpoint, "headers": dict(cfg.headers) or None}
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        grpc_exporter: SpanExporter = GrpcExporter(**kwargs)
        return grpc_exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(**kwargs)
