"""The contract between the SageMaker wire layer and one simulated container.

A container sees the request body and the few headers SageMaker forwards (section 1.2), and answers either
with an ``Output`` (its HTTP 200 body, as one chunk or as stream lines) or by raising ``ContainerError``
(its non-2xx status and body, which the wire layer wraps as a SageMaker ``ModelError``). Whether the client
used the streaming API is passed along only because some containers refuse it; framing is not their job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

import orjson

from service.simulator.model import SimEndpoint


class ContainerError(Exception):
    """The container answered with a non-2xx status; ``body`` is exactly what it sent."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(f"container error {status}")
        self.status = status
        self.body = body
        self.content_type = content_type


@dataclass(slots=True)
class Invocation:
    endpoint: SimEndpoint
    body: bytes
    content_type: str
    custom_attributes: str
    stream_api: bool
    #: a fresh seed for sampling without a client seed (drawn from the simulator's seeded PRNG)
    random_seed: Callable[[], int]
    #: a process-wide counter for response ids
    next_id: Callable[[], int]
    #: the ``tool_output`` fault for this answer, consumed only when the model produces a tool call or JSON
    tool_fault: Callable[[], str | None] = field(default=lambda: None)


@dataclass(slots=True)
class Output:
    """A 200 answer. When ``streamed``, each chunk is one logical stream line and the first ``tokens`` chunks
    carry one generated token each (the latency model paces those); otherwise ``chunks`` is the whole body."""

    content_type: str
    chunks: list[bytes]
    prompt_tokens: int
    tokens: int
    streamed: bool = False
    #: builds this container's in-stream error line (used by the ``container`` stream fault)
    error_line: Callable[[str], bytes] | None = field(default=None, repr=False)


class Container(Protocol):
    def handle(self, inv: Invocation) -> Output:
        """Answer one request or raise ContainerError."""
        ...

    def error_body(self, status: int, message: str) -> bytes:
        """The body this container sends for a failure with that status (used by injected faults)."""
        ...


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def parse_custom_attributes(raw: str) -> dict[str, str]:
    """``key=value`` pairs separated by ``;``; the last duplicate wins (section 4.3)."""
    pairs: dict[str, str] = {}
    for item in raw.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


# ---- parameter type checks (JSON types, as serde / pydantic would see them) ----

def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_uint(v: Any) -> bool:
    return is_int(v) and v >= 0


def is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_str(v: Any) -> TypeGuard[str]:
    return isinstance(v, str)


def is_strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def wrong_type(values: Mapping[str, Any], spec: Mapping[str, Callable[[Any], bool]]) -> str | None:
    """The first key whose non-null value fails its check (keys absent from ``spec`` are not checked)."""
    for key, value in values.items():
        check = spec.get(key)
        if check is not None and value is not None and not check(value):
            return key
    return None


def param(params: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A parameter where JSON null means absent."""
    value = params.get(key)
    return default if value is None else value


def render_messages(messages: list[dict[str, Any]]) -> str:
    """A stand-in chat template: ``"role: content"`` lines, then ``"assistant:"``. It only has to be stable,
    because it decides the prompt token count and the PRNG key of a chat request."""
    return "".join(f"{m['role']}: {_content_text(m.get('content'))}\n" for m in messages) + "assistant:"


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def toolkit_error(status: int, message: str) -> ContainerError:
    """The error body of the JumpStart (SageMaker inference toolkit) containers. The shape is the
    toolkit's usual one; the exact bodies of the JumpStart images are not verified in the reference."""
    return ContainerError(status, toolkit_error_body(status, message))


def toolkit_error_body(status: int, message: str) -> bytes:
    return dumps({"code": status, "type": "InternalServerException", "message": message})


def load_json_object(body: bytes, fail: Callable[[str], Exception]) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise fail(f"Invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise fail("The JSON body must be an object")
    return data
