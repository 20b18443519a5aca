"""JumpStart embedding containers (section 5.3) and LMI embeddings (section 5.4): one behaviour per schema,
chosen per endpoint, because a JumpStart model version accepts exactly one of them.

- ``jumpstart-text-inputs`` (huggingface-sentencesimilarity-*): ``{"text_inputs": str | [str], "mode":
  "embedding"}`` → ``{"embedding": [[...], ...]}`` (one vector per input, also for a single string: the
  reference leaves that case unverified). Other modes (``nn_corpus``) are not modelled: a 400 says so.
- ``jumpstart-list``: a JSON list of strings → a bare list of vectors.
- ``jumpstart-x-text`` (tensorflow-tcembedding-*): ``application/x-text``, the body is one string →
  ``{"embedding": [...]}``.
These use the SageMaker inference toolkit's error shape (``{"code", "type", "message"}``; 400 bad input,
415 content type). Vectors are L2-normalized.
- ``lmi-embedding``: ``{"inputs": str | [str]}``. The Rust/ONNX/PyTorch engines answer a flat vector for a
  string and a list of vectors for a list; the vLLM engine (LMI >= 0.36 in async mode) always a list of
  vectors. A body without ``inputs`` is 400 ``{"code": 400, "type": "TranslateException", "message":
  "Missing \"inputs\" in json."}``.
Inputs longer than ``max_input_tokens`` are truncated (sentence-transformers' max_seq_length); more than
``max_batch_size`` inputs, or an empty string, are a 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.simulator.containers.base import (
    ContainerError,
    Invocation,
    Output,
    dumps,
    is_str,
    is_strs,
    toolkit_error,
    toolkit_error_body,
)
from service.simulator.containers.embedding_vectors import embed, input_pieces


def _vectors(inv: Invocation, texts: list[str], fail: Any) -> tuple[list[list[float]], int]:
    endpoint = inv.endpoint
    if not texts:
        raise fail("the input list is empty")
    if len(texts) > endpoint.max_batch_size:
        raise fail(f"batch size {len(texts)} is over the maximum of {endpoint.max_batch_size} inputs per request")
    if any(not t.strip() for t in texts):
        raise fail("inputs must be non-empty strings")
    pieces = [input_pieces(t)[: endpoint.max_input_tokens] for t in texts]
    return [embed(p, endpoint.embedding_dim, True) for p in pieces], sum(len(p) for p in pieces)


def _json(inv: Invocation, fail: Any) -> Any:
    if inv.content_type.split(";")[0].strip().lower() != "application/json":
        raise toolkit_error(415, f"Content type {inv.content_type!r} is not supported; use application/json")
    try:
        return orjson.loads(inv.body)
    except orjson.JSONDecodeError as exc:
        raise fail(f"Invalid JSON body: {exc}") from None


def _bad(message: str) -> ContainerError:
    return toolkit_error(400, message)


class JumpStartTextInputs:
    def handle(self, inv: Invocation) -> Output:
        body = _json(inv, _bad)
        if not isinstance(body, dict) or not (is_str(body.get("text_inputs")) or is_strs(body.get("text_inputs"))):
            raise _bad("'text_inputs' is required: a string or a list of strings")
        if body.get("mode", "embedding") != "embedding":
            raise _bad(f"mode {str(body.get('mode'))[:40]!r} is not modelled by the simulator; use 'embedding'")
        texts = [body["text_inputs"]] if is_str(body["text_inputs"]) else body["text_inputs"]
        vectors, tokens = _vectors(inv, texts, _bad)
        return Output("application/json", [dumps({"embedding": vectors})], tokens, 0)

    def error_body(self, status: int, message: str) -> bytes:
        return toolkit_error_body(status, message)


class JumpStartList:
    def handle(self, inv: Invocation) -> Output:
        body = _json(inv, _bad)
        if not is_strs(body):
            raise _bad("The body must be a JSON list of strings")
        vectors, tokens = _vectors(inv, body, _bad)
        return Output("application/json", [dumps(vectors)], tokens, 0)

    def error_body(self, status: int, message: str) -> bytes:
        return toolkit_error_body(status, message)


class JumpStartXText:
    def handle(self, inv: Invocation) -> Output:
        if inv.content_type.split(";")[0].strip().lower() != "application/x-text":
            raise toolkit_error(415, f"Content type {inv.content_type!r} is not supported; use application/x-text")
        try:
            text = inv.body.decode()
        except UnicodeDecodeError:
            raise _bad("The application/x-text body must be UTF-8") from None
        [vector], tokens = _vectors(inv, [text], _bad)
        return Output("application/json", [dumps({"embedding": vector})], tokens, 0)

    def error_body(self, status: int, message: str) -> bytes:
        return toolkit_error_body(status, message)


def _lmi_error(message: str, status: int = 400) -> ContainerError:
    return ContainerError(status, dumps({"code": status, "type": "TranslateException", "message": message}))


class LmiEmbedding:
    def handle(self, inv: Invocation) -> Output:
        body = _json(inv, _lmi_error)
        if not isinstance(body, dict) or "inputs" not in body:
            raise _lmi_error('Missing "inputs" in json.')
        inputs = body["inputs"]
        if not (is_str(inputs) or is_strs(inputs)):
            raise _lmi_error('"inputs" must be a string or a list of strings')
        vectors, tokens = _vectors(inv, [inputs] if is_str(inputs) else inputs, _lmi_error)
        vllm = inv.endpoint.async_mode and inv.endpoint.at_least("0.36.0")
        answer = vectors[0] if is_str(inputs) and not vllm else vectors
        return Output("application/json", [dumps(answer)], tokens, 0)

    def error_body(self, status: int, message: str) -> bytes:
        return dumps({"code": status, "type": "TranslateException", "message": message})
