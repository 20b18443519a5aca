"""Call jumpgate from LangChain's ChatOpenAI: point `base_url` at the gateway.

    pip install langchain-openai
    python clients/examples/langchain_chat.py [--url http://127.0.0.1:8080] [--model llama3-8b]

The gateway URL comes from --url, else $JUMPGATE_URL, else http://127.0.0.1:8080.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("JUMPGATE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--model", default=os.environ.get("JUMPGATE_MODEL", "llama3-8b"))
    parser.add_argument("--prompt", default="Name three rivers in Europe.")
    args = parser.parse_args(argv)

    # base_url / api_key / model are LangChain's documented keyword aliases; mypy's pydantic plugin knows only the
    # field names (openai_api_base, ...), hence the ignore.
    llm = ChatOpenAI(  # type: ignore[call-arg]
        base_url=args.url.rstrip("/") + "/v1",
        api_key=os.environ.get("JUMPGATE_API_KEY", "unused"),
        model=args.model,
        max_tokens=32,
        temperature=0.7,
        max_retries=2,
        # Canonical extras the OpenAI API lacks travel in the body, as with the SDK's extra_body.
        extra_body={"top_k": 40},
    )
    messages = [SystemMessage("You answer briefly."), HumanMessage(args.prompt)]

    reply = llm.invoke(messages)
    print(f"answer: {reply.content}")
    usage: Mapping[str, Any] = getattr(reply, "usage_metadata", None) or {}
    print(f"usage: {usage.get('input_tokens')} prompt + {usage.get('output_tokens')} completion tokens")

    pieces = [str(chunk.content) for chunk in llm.stream(messages)]
    print(f"streamed {len(pieces)} chunks: {''.join(pieces)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
