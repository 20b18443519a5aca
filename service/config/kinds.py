"""A model serves one API: its targets are all text generation endpoints or all embedding endpoints."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from service.config.problems import Problem


def mixed_models(data: Mapping[str, Any], source: str, embedding_schemas: Collection[str]) -> Iterator[Problem]:
    endpoints = data.get("endpoints") if isinstance(data.get("endpoints"), Mapping) else {}
    models = data.get("models") if isinstance(data.get("models"), Mapping) else {}
    kinds = {eid: isinstance(ep, Mapping) and ep.get("schema") in embedding_schemas
             for eid, ep in (endpoints or {}).items()}
    for name, model in (models or {}).items():
        targets = model.get("targets") if isinstance(model, Mapping) else None
        refs = [t.get("endpoint") for t in targets or () if isinstance(t, Mapping)] if isinstance(targets, list) else []
        embedding = sorted(str(r) for r in refs if kinds.get(r))
        text = sorted(str(r) for r in refs if r in kinds and not kinds[r])
        if embedding and text:
            yield Problem(source, f"models.{name}.targets",
                          f"mixes embedding endpoints ({', '.join(embedding)}) with text generation endpoints "
                          f"({', '.join(text)}): a model serves one API; split it into two models")
        if embedding and isinstance(model, Mapping) and model.get("shadow") is not None:
            yield Problem(source, f"models.{name}.shadow", "shadow traffic is for text generation models only")
