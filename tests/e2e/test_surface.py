"""End to end, the OpenAI surface beyond plain chat: the official openai SDK and LangChain → jumpgate (uvicorn
process) → simulator (uvicorn process). Embeddings (base64 default and float, batches, dimensions), model
retrieval, logprobs on the TGI and LMI models streaming and not, fields sent at their default values, bad input,
and conversations with runs of one role on the Llama 2 models."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from openai import OpenAI

from tests.e2e.conftest import e2e_config
from tests.procs import Proc, Sim, running_stack

pytestmark = pytest.mark.e2e

TEI = "jumpgate-demo-tei-bge-large"
MESSAGES: Any = [{"role": "user", "content": "Name a colour."}]


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# --- embeddings ---------------------------------------------------------------------------------------------

def test_embeddings_base64_by_default_and_float_agree(client: OpenAI, sim: Sim) -> None:
    raw = client.embeddings.with_raw_response.create(model="bge-large", input="hello world")
    assert isinstance(raw.http_response.json()["data"][0]["embedding"], str)  # the SDK asked for base64
    decoded = raw.parse().data[0].embedding
    floats = client.embeddings.create(model="bge-large", input="hello world", encoding_format="float")
    assert len(decoded) == 1024 and abs(norm(decoded) - 1) < 1e-5
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6, abs=1e-7)  # float32 rounding only
    sent = sim.requests(TEI)[0]["body_json"]
    assert sent == {"inputs": ["hello world"], "normalize": True, "truncate": False}
    assert raw.headers["x-jumpgate-endpoint"] == "bge-large-tei-g5"
    usage = raw.parse().usage
    assert usage.prompt_tokens == usage.total_tokens > 0


def test_a_hundred_strings_split_across_tei_batches_and_reassembled_in_order(client: OpenAI, sim: Sim) -> None:
    texts = [f"document {i} about topic {i % 7}" for i in range(100)]
    result = client.embeddings.create(model="bge-large", input=texts)
    assert [d.index for d in result.data] == list(range(100))
    calls = sim.requests(TEI)
    assert sorted(len(c["body_json"]["inputs"]) for c in calls) == [4, 32, 32, 32]
    by_text = {t: i for i, t in enumerate(texts)}
    for call in calls:  # every batch's vectors landed at their inputs' positions
        for text in call["body_json"]["inputs"][:3]:
            alone = client.embeddings.create(model="bge-large", input=text, encoding_format="float")
            assert result.data[by_text[text]].embedding == pytest.approx(alone.data[0].embedding, rel=1e-6,
                                                                         abs=1e-7)
    assert len({tuple(d.embedding[:8]) for d in result.data}) == 100


def test_dimensions_are_cut_by_tei_and_normalized(client: OpenAI, sim: Sim) -> None:
    result = client.embeddings.create(model="bge-large", input=["a b", "c d"], dimensions=256)
    assert all(len(d.embedding) == 256 and abs(norm(d.embedding) - 1) < 1e-5 for d in result.data)
    assert sim.requests(TEI)[0]["body_json"]["dimensions"] == 256


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"input": ""}, "input"),
    ({"input": ["x"] * 2049}, "input"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
])
def test_bad_embedding_input_is_400_naming_the_field(client: OpenAI, sim: Sim, kwargs: dict[str, Any],
                                                     param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="bge-large", **kwargs)
    assert err.value.response.json()["error"]["param"] == param
    assert sim.requests() == []


def test_over_long_input_is_400_with_teis_reason(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="bge-large", input="word " * 600)
    assert "512" in err.value.response.json()["error"]["message"]


def test_langchain_openai_embeddings(gateway_url: str, sim: Sim) -> None:
    # tiktoken's ids mean nothing to a BGE model: LangChain must send text (its documented setting for
    # OpenAI-compatible servers that are not OpenAI)
    emb = OpenAIEmbeddings(model="bge-large", base_url=gateway_url + "/v1", api_key="unused",  # type: ignore[call-arg]
                           check_embedding_ctx_length=False, chunk_size=40, max_retries=0)
    docs = [f"passage {i}" for i in range(50)]
    vectors = emb.embed_documents(docs)
    query = emb.embed_query("passage 7")
    assert len(vectors) == 50 and all(len(v) == 1024 for v in vectors)
    assert query == pytest.approx(vectors[7], rel=1e-6, abs=1e-7)
    assert sorted(len(r["body_json"]["inputs"]) for r in sim.requests(TEI)) == [1, 8, 10, 32]


# --- model retrieval ----------------------------------------------------------------------------------------

def test_models_retrieve(client: OpenAI) -> None:
    model = client.models.retrieve("llama3-8b")
    assert model.id == "llama3-8b" and model.object == "model" and model.owned_by == "jumpgate"
    assert client.models.retrieve("bge-large").model_extra["kind"] == "embedding"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model" + "x" * 500)
    error = err.value.response.json()["error"]
    assert error["code"] == "model_not_found" and len(error["message"]) < 1000


# --- logprobs -----------------------------------------------------------------------------------------------

def check_entries(content: Any, text: str, top: int) -> None:
    assert content, "no token entries"
    assert "".join(e.token for e in content) == text  # every token of the text, special tokens removed
    for e in content:
        assert e.bytes == list(e.token.encode()) and e.logprob <= 0
        assert len(e.top_logprobs) == top


@pytest.mark.parametrize(("model", "endpoint", "sent"), [
    ("llama3-8b", "jumpgate-demo-tgi-llama3-8b", lambda b: b["parameters"]["top_n_tokens"] == 3),
    ("llama3-8b-dolly", "jumpgate-demo-ft-llama3-8b-dolly", lambda b: b["parameters"]["top_n_tokens"] == 3),
    ("llama3-8b-messages", "jumpgate-demo-tgi-llama3-8b", lambda b: b["top_logprobs"] == 3 and b["logprobs"]),
])
def test_chat_logprobs(client: OpenAI, sim: Sim, model: str, endpoint: str, sent: Any) -> None:
    completion = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12, logprobs=True,
                                                top_logprobs=3)
    choice = completion.choices[0]
    assert choice.logprobs is not None
    check_entries(choice.logprobs.content, choice.message.content or "", 3)
    assert sent(sim.requests(endpoint)[0]["body_json"])


@pytest.mark.parametrize(("model", "top"), [("llama3-8b", 2), ("llama3-8b-messages", 2), ("llama3-8b-dolly", 0)])
def test_streamed_chat_logprobs_per_chunk(client: OpenAI, model: str, top: int) -> None:
    stream = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12, logprobs=True,
                                            top_logprobs=top, stream=True)
    text, entries = "", []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            assert chunk.choices[0].logprobs and chunk.choices[0].logprobs.content
            entries += chunk.choices[0].logprobs.content
    check_entries(entries, text, top)


def lmi_chat_config(runtime_url: str) -> dict[str, Any]:
    """The e2e config plus LMI's vLLM chat (rolling batch) on the demo LMI endpoint, whose logprob shapes are LMI's
    own. Its own stack: that endpoint serves chat only (LMI rolling batch takes `inputs` or `messages`, not the
    `prompt` bodies of completions), which the fuzz test of the shared stack would rightly report as 502s."""
    data = e2e_config(runtime_url)
    data["endpoints"]["llama3-8b-lmi-chat"] = {
        "endpoint_name": "jumpgate-demo-ft-llama3-8b-dolly", "schema": "openai", "instance_type": "ml.g5.2xlarge",
        "context_length": 8192, "container": {"kind": "lmi", "version": "0.33.0"}}
    data["models"]["llama3-8b-lmi-chat"] = {"targets": [{"endpoint": "llama3-8b-lmi-chat"}]}
    return data


@pytest.fixture(scope="module")
def lmi_chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    with running_stack(tmp_path_factory.mktemp("lmi-chat"), lmi_chat_config) as (_, gateway), \
            OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30) as client:
        yield client


@pytest.mark.parametrize("stream", [False, True])
def test_lmi_chat_logprobs_are_repaired(lmi_chat: OpenAI, stream: bool) -> None:
    # LMI's rolling-batch chat: logprobs as a list, bytes as code points, the top token as a number when
    # streaming; the client sees the OpenAI shape with UTF-8 bytes
    kwargs: Any = {"model": "llama3-8b-lmi-chat", "messages": MESSAGES, "max_tokens": 12, "logprobs": True,
                   "top_logprobs": 1}
    entries: list[Any] = []
    if stream:
        text = ""
        for chunk in lmi_chat.chat.completions.create(stream=True, **kwargs):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                entries += chunk.choices[0].logprobs.content if chunk.choices[0].logprobs else []
    else:
        choice = lmi_chat.chat.completions.create(**kwargs).choices[0]
        text, entries = choice.message.content or "", choice.logprobs.content if choice.logprobs else []
    check_entries(entries, text, 1)
    assert all(e.top_logprobs[0].token == e.token for e in entries)
    with pytest.raises(openai.BadRequestError) as err:
        lmi_chat.chat.completions.create(**{**kwargs, "top_logprobs": 2})
    assert "at most 1" in err.value.response.json()["error"]["message"]


def test_completions_logprobs_in_the_legacy_shape(client: OpenAI) -> None:
    completion = client.completions.create(model="llama3-8b", prompt="The sky is", max_tokens=8, logprobs=2)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.top_logprobs and logprobs.text_offset
    assert "".join(logprobs.tokens) == completion.choices[0].text
    assert all(len(top) <= 2 for top in logprobs.top_logprobs)
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset[1] == len(logprobs.tokens[0])


@pytest.mark.parametrize(("model", "top", "says"), [
    ("llama3-8b", 6, "at most 5"), ("llama2-7b-chat", 0, "no token log-probabilities")])
def test_logprobs_the_endpoint_cannot_give_are_400(client: OpenAI, sim: Sim, model: str, top: int,
                                                   says: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=MESSAGES, logprobs=True, top_logprobs=top)
    error = err.value.response.json()["error"]
    assert error["param"] in ("top_logprobs", "logprobs") and says in error["message"]
    assert sim.requests() == []


# --- default-valued fields ----------------------------------------------------------------------------------

DEFAULTS: list[tuple[str, Any]] = [("store", False), ("service_tier", "auto"), ("service_tier", "default"),
                                   ("modalities", ["text"]), ("metadata", {"feature": "surface-test"}),
                                   ("user", "user-123"), ("logit_bias", {}), ("parallel_tool_calls", True)]


@pytest.mark.parametrize(("name", "value"), DEFAULTS)
def test_each_default_valued_field_is_accepted(client: OpenAI, name: str, value: Any) -> None:
    completion = client.chat.completions.create(model="llama3-8b", messages=MESSAGES, max_tokens=4,
                                                **{name: value})
    assert completion.choices[0].message.content


def test_metadata_reaches_the_request_log_line(client: OpenAI, stack: tuple[Proc, Proc]) -> None:
    client.chat.completions.create(model="llama3-8b", messages=MESSAGES, max_tokens=4,
                                   metadata={"trace": "md-7f3a"})
    assert '"metadata":{"trace":"md-7f3a"}' in stack[1].output_with("md-7f3a")


def test_non_default_fields_are_all_named_at_once(client: OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="llama3-8b", messages=MESSAGES, store=True, service_tier="flex",
                                       reasoning_effort="high", extra_body={"frobnicate": 1})
    message = err.value.response.json()["error"]["message"]
    assert all(name in message for name in ("`store`", "`service_tier`", "`reasoning_effort`", "`frobnicate`"))
    assert sim.requests() == []


# --- Llama 2 conversations with runs of one role ------------------------------------------------------------

@pytest.mark.parametrize(("model", "endpoint"), [("llama2-7b-chat", "jumpgate-demo-jumpstart-llama2-7b-chat"),
                                                 ("llama2-13b-neuron", "jumpgate-demo-neuron-llama2-13b")])
def test_langchain_double_messages_conversation_on_llama2(gateway_url: str, sim: Sim, model: str,
                                                          endpoint: str) -> None:
    # the shape of langchain-tests' ChatModelIntegrationTests.test_double_messages_conversation
    llm = ChatOpenAI(base_url=gateway_url + "/v1", api_key="unused", model=model,  # type: ignore[call-arg]
                     max_tokens=16, max_retries=0)
    messages = [SystemMessage("hello"), SystemMessage("hello"), HumanMessage("hello"), HumanMessage("hello"),
                AIMessage("hello"), AIMessage("hello"), HumanMessage("how are you")]
    result = llm.invoke(messages)
    assert isinstance(result, AIMessage) and isinstance(result.text, str) and len(result.content) > 0
    body = sim.requests(endpoint)[0]["body_json"]
    if model == "llama2-7b-chat":  # the Meta container got one alternating dialog
        assert [m["role"] for m in body["inputs"][0]] == ["system", "user", "assistant", "user"]
        assert body["inputs"][0][1]["content"] == "hello\n\nhello"
    else:
        assert body["inputs"].count("[INST]") == 2 and "hello\n\nhello" in body["inputs"]
