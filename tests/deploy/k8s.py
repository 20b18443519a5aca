"""deploy/kubernetes as the tests see it: an installation's copy of the tree (with the local api-keys.env the
README has the user write, and an overlay adding the optional hpa-inflight component), rendered by kustomize,
and a model of the scrape targets the Prometheus Operator derives from monitors, Services and pods."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml
from kubernetes_validate.utils import schema_contents  # type: ignore[import-untyped]
from referencing import Registry, Resource

from tests.deploy import kustomize
from tests.procs import ROOT

K8S = ROOT / "deploy" / "kubernetes"
SCHEMAS = ROOT / "tests" / "fixtures" / "k8s-schemas"
K8S_VERSIONS = ("1.28.0", "1.32.0")
#: tree name → kustomization directory inside the installation's copy
TREES = {"base": "base", "overlay": "overlays/example", "inflight": "overlays/inflight"}
TEST_KEY = "a-test-api-key"
TEST_KEY_SHA256 = hashlib.sha256(TEST_KEY.encode()).hexdigest()

Doc = dict[str, Any]


def install_copy(root: Path) -> Path:
    """deploy/kubernetes copied to `root`, as a user has it after the README's steps: api-keys.env written with
    the README's command (for TEST_KEY), and an overlay that adds the hpa-inflight component to the example."""
    tree = root / "kubernetes"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("api-keys.env"))
    subprocess.run(["bash", "-c", secret_command()], cwd=tree / TREES["overlay"],
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KEY": TEST_KEY},
                   check=True, timeout=30)
    inflight = tree / TREES["inflight"]
    inflight.mkdir()
    (inflight / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": ["../example"], "components": ["../../components/hpa-inflight"]}))
    return tree


def secret_command() -> str:
    """The one command the README gives for writing the overlay's api-keys.env (a `> api-keys.env` line)."""
    readme = (ROOT / "README.md").read_text()
    (line,) = {ln.strip() for ln in readme.splitlines() if ln.strip().endswith("> api-keys.env")}
    return line


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> list[Doc]:
    """`kubectl kustomize` (kustomize itself, which the machine image ships with kubectl) when it is installed,
    else the tests' own subset (tests/deploy/kustomize.py, checked against kubectl where both exist)."""
    binary = kubectl()
    if binary is None:
        return kustomize.build(directory)
    done = subprocess.run([binary, "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                          check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} documents named {name}"
    return found[0]


def namespace(doc: Doc) -> str:
    return str(doc["metadata"].get("namespace", "default"))


def strict(schema: Any) -> Any:
    """Forbid fields a schema does not list, as kubectl's strict field validation does for custom resources."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def monitor_validator(kind: str) -> jsonschema.Draft202012Validator:
    """The vendored prometheus-operator schema of `kind` (ServiceMonitor, PodMonitor), made strict."""
    definitions = schema_contents(f"kubernetes-json-schema/v{K8S_VERSIONS[-1]}-local-strict/_definitions.json",
                                  K8S_VERSIONS[-1])
    registry: Registry = Resource.from_contents(definitions) @ Registry()
    schema = json.loads((SCHEMAS / f"{kind.lower()}-monitoring-v1.json").read_text())
    return jsonschema.Draft202012Validator(strict(schema), registry=registry)


# --- scrape targets, as the Prometheus Operator finds them -----------------------------------------------------

@dataclass(frozen=True)
class Pod:
    """One pod of a Deployment (every replica is alike): its namespace, labels and named container ports."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Target:
    pod: Pod
    port: int
    labels: tuple[tuple[str, str], ...]  # the target labels the Operator sets (pkg/prometheus/promcfg.go)


def pods(docs: list[Doc]) -> list[Pod]:
    out = []
    for d in docs:
        if d["kind"] == "Deployment":
            template = d["spec"]["template"]
            ports = tuple((p["name"], p["containerPort"]) for c in template["spec"]["containers"]
                          for p in c.get("ports", []) if "name" in p)
            out.append(Pod(d["metadata"]["name"], namespace(d), tuple(sorted(template["metadata"]["labels"].items())),
                           ports))
    return out


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise NotImplementedError(f"selector fields {sorted(selector)}")
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _namespaces(monitor: Doc) -> Any:
    chosen = monitor["spec"].get("namespaceSelector")
    if not chosen:
        return {namespace(monitor)}
    if chosen.get("any"):
        return None  # every namespace
    return set(chosen["matchNames"])


def service_monitor_targets(monitor: Doc, docs: list[Doc]) -> list[Target]:
    """A ServiceMonitor's targets: for each selected Service and each of the monitor's endpoints, the Service
    port named like it, on every pod the Service selects, at the container port the Service forwards to."""
    allowed, spec = _namespaces(monitor), monitor["spec"]
    targets = []
    for service in (d for d in docs if d["kind"] == "Service"):
        labels = service["metadata"].get("labels", {})
        if (allowed is not None and namespace(service) not in allowed) or not matches(spec["selector"], labels):
            continue
        job = labels.get(spec.get("jobLabel", ""), service["metadata"]["name"])
        for endpoint in spec["endpoints"]:
            for port in (p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]):
                for pod in pods(docs):
                    if pod.namespace == namespace(service) and all(
                            dict(pod.labels).get(k) == v for k, v in service["spec"]["selector"].items()):
                        number = dict(pod.ports).get(port["targetPort"], port["targetPort"])
                        target_labels = {"job": job, "namespace": pod.namespace, "service": service["metadata"]["name"],
                                         "pod": pod.name, "container": "jumpgate", "endpoint": endpoint["port"],
                                         "instance": f"{pod.name}:{number}"}
                        targets.append(Target(pod, int(number), tuple(sorted(target_labels.items()))))
    return targets


def pod_monitor_targets(monitor: Doc, docs: list[Doc]) -> list[Target]:
    allowed, spec = _namespaces(monitor), monitor["spec"]
    targets = []
    for pod in pods(docs):
        if (allowed is not None and pod.namespace not in allowed) or not matches(spec["selector"], dict(pod.labels)):
            continue
        job = dict(pod.labels).get(spec.get("jobLabel", ""), f"{namespace(monitor)}/{monitor['metadata']['name']}")
        for endpoint in spec["podMetricsEndpoints"]:
            for name, number in pod.ports:
                if name == endpoint["port"]:
                    target_labels = {"job": job, "namespace": pod.namespace, "pod": pod.name, "container": "jumpgate",
                                     "endpoint": name, "instance": f"{pod.name}:{number}"}
                    targets.append(Target(pod, number, tuple(sorted(target_labels.items()))))
    return targets


def per_pod(targets: list[Target]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.pod.name] = counts.get(t.pod.name, 0) + 1
    return counts
