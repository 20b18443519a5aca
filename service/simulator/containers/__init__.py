"""Registry of simulated container behaviours: one object per container kind, looked up by name."""

from __future__ import annotations

from service.simulator.containers.base import Container, ContainerError, Invocation, Output
from service.simulator.containers.jumpstart_embedding import (
    JumpStartList,
    JumpStartTextInputs,
    JumpStartXText,
    LmiEmbedding,
)
from service.simulator.containers.lmi import Lmi
from service.simulator.containers.meta_llama import MetaLlama
from service.simulator.containers.neuron import Neuron
from service.simulator.containers.tei import Tei
from service.simulator.containers.text2text import Text2Text
from service.simulator.containers.tgi import Tgi

CONTAINERS: dict[str, Container] = {}


def register(name: str, container: Container) -> None:
    CONTAINERS[name] = container


def get(name: str) -> Container:
    try:
        return CONTAINERS[name]
    except KeyError:
        raise ValueError(f"unknown container {name!r}; known: {', '.join(sorted(CONTAINERS))}") from None


register("tgi", Tgi())
register("lmi", Lmi())
register("lmi-neuron", Neuron())
register("meta-llama", MetaLlama())
register("text2text", Text2Text())
register("tei", Tei())
register("jumpstart-text-inputs", JumpStartTextInputs())
register("jumpstart-list", JumpStartList())
register("jumpstart-x-text", JumpStartXText())
register("lmi-embedding", LmiEmbedding())

__all__ = ["CONTAINERS", "Container", "ContainerError", "Invocation", "Output", "get", "register"]
