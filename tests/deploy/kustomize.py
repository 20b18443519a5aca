"""A minimal kustomize for the tests, used when no kustomize binary is installed (none is on PyPI; the
tests cross-check this against `kubectl kustomize` where kubectl exists).

Supports exactly what deploy/kubernetes uses and refuses anything else, so it never silently renders less
than kustomize would: `resources` (files and kustomization directories), `namespace`, `images` (newName /
newTag), `labels` (pairs, without selectors), and `patches` given by `path` as strategic-merge patches
(maps merge, lists of maps with a `name` merge by name, other lists are replaced, a null value deletes).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "labels", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
Doc = dict[str, Any]


def build(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise NotImplementedError(f"{directory}: kustomization fields not supported here: {sorted(unsupported)}")
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        docs.extend(build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d])
    for label_set in kustomization.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise NotImplementedError("labels with includeSelectors / includeTemplates")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise NotImplementedError(f"patch forms other than `path`: {patch_entry}")
        patch = yaml.safe_load((directory / patch_entry["path"]).read_text())
        target = _find(docs, patch["kind"], patch["metadata"]["name"])
        merged = merge(target, patch)
        target.clear()
        target.update(merged)
    for image in kustomization.get("images", []):
        _set_image(docs, image)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise LookupError(f"patch target {kind}/{name}: {len(found)} matches")
    return found[0]


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        out = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(out)}
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = merge(out[index[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _set_image(docs: list[Doc], image: dict[str, str]) -> None:
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name = container["image"].split("@")[0].rsplit(":", 1)[0] if ":" in container["image"].split("/")[-1] \
                else container["image"]
            if name != image["name"]:
                continue
            tag = image.get("newTag", container["image"][len(name) + 1:] or None)
            container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")
