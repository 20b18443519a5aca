"""A minimal kustomize for the tests, used when no kustomize binary is installed (none is on PyPI; the
tests cross-check this against `kubectl kustomize` where kubectl exists).

Supports exactly what deploy/kubernetes uses and refuses anything else, so it never silently renders less
than kustomize would: `resources` (files and kustomization directories), `components` (kind Component: its
patches apply to what the including kustomization has gathered), `namespace`, `images` (newName / newTag),
`labels` (pairs, without selectors), `patches` given by `path` as strategic-merge patches (maps merge, lists of
maps with a `name` merge by name, other lists are replaced, a null value deletes), and `secretGenerator`
(`envs` files and `literals`; the name gets kustomize's content-hash suffix and references to it in pod specs
follow).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "components", "namespace", "images", "labels", "patches",
             "secretGenerator"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
Doc = dict[str, Any]


def build(directory: Path, gathered: list[Doc] | None = None) -> list[Doc]:
    """Render the kustomization in `directory`; a Component renders onto its includer's `gathered` documents."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise NotImplementedError(f"{directory}: kustomization fields not supported here: {sorted(unsupported)}")
    if (kustomization.get("kind") == "Component") != (gathered is not None):
        raise ValueError(f"{directory}: a Component is used through `components`, a Kustomization through "
                         "`resources`")
    docs: list[Doc] = [] if gathered is None else gathered
    for entry in kustomization.get("resources", []):
        path = directory / entry
        docs.extend(build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d])
    for entry in kustomization.get("components", []):
        docs = build(directory / entry, docs)
    generated = [secret(directory, spec) for spec in kustomization.get("secretGenerator", [])]
    docs.extend(generated)
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
    for doc in generated:
        _add_hash_suffix(docs, doc)
    return docs


def secret(directory: Path, spec: dict[str, Any]) -> Doc:
    """A secretGenerator entry → its Secret (name without the hash suffix yet)."""
    if set(spec) - {"name", "envs", "literals", "type"}:
        raise NotImplementedError(f"secretGenerator fields not supported here: {sorted(set(spec))}")
    pairs: list[tuple[str, str]] = []
    for env_file in spec.get("envs", []):
        path = directory / env_file
        if not path.is_file():
            raise FileNotFoundError(f"secretGenerator {spec['name']}: {path} does not exist (create it first)")
        pairs += env_pairs(path.read_text(encoding="utf-8"))
    pairs += [(key, value) for key, _, value in (literal.partition("=") for literal in spec.get("literals", []))]
    data = {key: _base64(value) for key, value in pairs}
    if len(data) != len(pairs):
        raise ValueError(f"secretGenerator {spec['name']}: a key is given twice")
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": spec["name"]},
            "type": spec.get("type", "Opaque"), "data": data}


def _base64(value: str) -> str:
    """kustomize's base64 for generated data (kyaml's encodeBase64): a value whose encoding reaches 70 characters
    is cut into lines of 70, each ending in a newline (and the hash is computed over that text)."""
    encoded = base64.b64encode(value.encode()).decode()
    if len(encoded) < 70:
        return encoded
    return "".join(encoded[i:i + 70] + "\n" for i in range(0, len(encoded), 70))


_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def env_pairs(text: str) -> list[tuple[str, str]]:
    """kustomize's env-file rule: leading whitespace dropped, blank and `#` lines skipped, KEY=VALUE split at the
    first `=`, the value kept as it is (trailing spaces included). A line without `=` reads the generating
    shell's environment in kustomize: refused here, a test must not depend on it."""
    pairs = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not _ENV_NAME.fullmatch(key):
            raise ValueError(f"env file line {number}: expected KEY=VALUE, got {raw[:40]!r}")
        pairs.append((key, value))
    return pairs


def name_hash(doc: Doc) -> str:
    """kustomize's suffix for a generated Secret (api/hasher/hasher.go): sha256 of the JSON of kind, type, data
    and name, where the name is always "" (the hasher looks up "metadata/name" as one key, which no document
    has); the first 10 hex digits, with 0 1 3 a e mapped to g h k m t so the suffix never spells a word."""
    encoded = json.dumps({"data": doc.get("data", {}), "kind": doc["kind"], "name": "", "type": doc["type"]},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:10].translate(str.maketrans("013ae", "ghkmt"))


def _add_hash_suffix(docs: list[Doc], generated: Doc) -> None:
    old = generated["metadata"]["name"]
    new = f"{old}-{name_hash(generated)}"
    generated["metadata"]["name"] = new
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None and ref.get("name") == old:
                    ref["name"] = new
            for source in container.get("envFrom", []):
                if source.get("secretRef", {}).get("name") == old:
                    source["secretRef"]["name"] = new
        for volume in pod.get("volumes", []):
            if volume.get("secret", {}).get("secretName") == old:
                volume["secret"]["secretName"] = new


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
        items = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(items)}
        for item in patch:
            if item["name"] in index:
                items[index[item["name"]]] = merge(items[index[item["name"]]], item)
            else:
                items.append(copy.deepcopy(item))
        return items
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
