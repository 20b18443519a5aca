"""Deterministic embedding vectors shared by the embedding containers.

A vector depends only on the text's tokens (so a truncated input gets the vector of what remains): floats
drawn from a PRNG seeded with a SHA-256 of the tokens, L2-normalized when asked. Token ids as input are
rendered as ``<id>`` pieces. Token counts follow ``textgen.count_tokens`` (a leading BOS/CLS piece).
"""

from __future__ import annotations

import hashlib
import math
import random

from service.simulator.textgen import BOS_TEXT, prompt_pieces


def input_pieces(item: str | list[int]) -> list[str]:
    """The input as tokens, BOS first (for ids: the ids themselves)."""
    if isinstance(item, str):
        return prompt_pieces(item)
    return [BOS_TEXT, *(f"<{i}>" for i in item)]


def embed(pieces: list[str], dim: int, normalize: bool) -> list[float]:
    seed = int.from_bytes(hashlib.sha256("\x1f".join(pieces).encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = [round(rng.gauss(0.0, 1.0), 6) for _ in range(dim)]
    return l2_normalize(vector) if normalize else vector


def l2_normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def text_vector(text: str, dim: int, normalize: bool = True) -> list[float]:
    return embed(input_pieces(text), dim, normalize)
