"""Call jumpgate with the official OpenAI Python SDK: only `base_url` changes.

    python clients/examples/openai_sdk.py [--url http://127.0.0.1:8080] [--model llama3-8b]

The gateway URL comes from --url, else $JUMPGATE_URL, else http://127.0.0.1:8080. The API key is sent as a
bearer token; the demo gateway does not check it, but the SDK insists on having one.
"""

from __future__ import annotations

import argparse
import os
import sys

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("JUMPGATE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--model", default=os.environ.get("JUMPGATE_MODEL", "llama3-8b"))
    parser.add_argument("--prompt", default="Name three rivers in Europe.")
    args = parser.parse_args(argv)

    client = OpenAI(base_url=args.url.rstrip("/") + "/v1", api_key=os.environ.get("JUMPGATE_API_KEY", "unused"))
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": args.prompt}]

    # One answer, with jumpgate's headers read through the SDK's raw-response accessor.
    raw = client.chat.completions.with_raw_response.create(model=args.model, messages=messages, max_tokens=32)
    answer = raw.parse()
    print(f"endpoint: {raw.headers.get('x-jumpgate-endpoint')}")
    print(f"answer: {answer.choices[0].message.content}")
    if answer.usage is not None:
        print(f"usage: {answer.usage.prompt_tokens} prompt + {answer.usage.completion_tokens} completion tokens")

    # The same call streamed; top_k is one of jumpgate's canonical extras, passed with extra_body.
    stream = client.chat.completions.create(model=args.model, messages=messages, max_tokens=32, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"top_k": 40})
    pieces: list[str] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            print(f"streamed usage: {chunk.usage.completion_tokens} completion tokens")
    print(f"streamed: {''.join(pieces)}")

    print("models: " + ", ".join(m.id for m in client.models.list()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
