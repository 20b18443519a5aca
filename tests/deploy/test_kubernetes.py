"""deploy/kubernetes: the base and the example overlay render, validate offline against the Kubernetes
schemas (kubernetes-validate, strict) and the vendored ServiceMonitor schema, and agree with each other,
with the Dockerfile and with the gateway's real endpoints."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from tests.deploy import dockerfile, kustomize
from tests.procs import ROOT, Proc

K8S = ROOT / "deploy" / "kubernetes"
TREES = {"base": K8S / "base", "overlay": K8S / "overlays" / "example"}
SERVICEMONITOR_SCHEMA = ROOT / "tests" / "fixtures" / "k8s-schemas" / "servicemonitor-monitoring-v1.json"
K8S_VERSIONS = ("1.28.0", "1.32.0")
DRAIN_SECONDS = 30  # the drain period the manifests promise (README "Deployment")

Doc = dict[str, Any]


@pytest.fixture(scope="module", params=sorted(TREES))
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return kustomize.build(TREES[request.param])


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    if kind == "Service" and name is None:
        name = "jumpgate"  # the client-facing one; jumpgate-metrics is the headless one for scraping
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} documents"
    return found[0]


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


def servicemonitor_validator() -> jsonschema.Draft202012Validator:
    definitions = schema_contents(f"kubernetes-json-schema/v{K8S_VERSIONS[-1]}-local-strict/_definitions.json",
                                  K8S_VERSIONS[-1])
    registry: Registry = Resource.from_contents(definitions) @ Registry()
    return jsonschema.Draft202012Validator(strict(json.loads(SERVICEMONITOR_SCHEMA.read_text())), registry=registry)


def validate(doc: Doc) -> None:
    if doc["kind"] == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        servicemonitor_validator().validate(doc)
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def test_every_document_validates(rendered: list[Doc]) -> None:
    kinds = {d["kind"] for d in rendered}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"} <= kinds
    for doc in rendered:
        validate(doc)


def test_validation_catches_mistakes(rendered: list[Doc]) -> None:
    """The validators are not vacuous: a misspelt field fails in a core kind and in the ServiceMonitor."""
    deployment = json.loads(json.dumps(one(rendered, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitor = json.loads(json.dumps(one(rendered, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
    monitor["spec"]["endpoints"][0] = {"port": 8080}
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed")
@pytest.mark.parametrize("tree", sorted(TREES))
def test_test_renderer_agrees_with_kubectl_kustomize(tree: str) -> None:
    done = subprocess.run(["kubectl", "kustomize", str(TREES[tree])], capture_output=True, text=True, timeout=60,
                          check=True)
    def key(d: Doc) -> tuple[str, str]:
        return d["kind"], d["metadata"]["name"]
    theirs = sorted((d for d in yaml.safe_load_all(done.stdout) if d), key=key)
    assert sorted(kustomize.build(TREES[tree]), key=key) == theirs


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc]) -> Doc:
    (c,) = pod_spec(docs)["containers"]
    return c


def pod_labels(docs: list[Doc]) -> dict[str, str]:
    labels: dict[str, str] = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_probes_and_port_match_the_image(rendered: list[Doc]) -> None:
    c = container(rendered)
    image = dockerfile.load()
    (http,) = [p for p in c["ports"] if p["name"] == "http"]
    assert http["containerPort"] == dockerfile.port(image)
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    security = pod_spec(rendered)["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == dockerfile.user_id(image)


def test_shutdown_drains_for_the_drain_period(rendered: list[Doc]) -> None:
    command = container(rendered)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert 0 < pre_stop < DRAIN_SECONDS
    assert pod_spec(rendered)["terminationGracePeriodSeconds"] == pre_stop + DRAIN_SECONDS


def test_resources_are_requested_and_bounded(rendered: list[Doc]) -> None:
    resources = container(rendered)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_config_is_mounted_where_jumpgate_config_points(rendered: list[Doc], tmp_path: Path) -> None:
    c = container(rendered)
    config_path = {e["name"]: e.get("value") for e in c["env"]}["JUMPGATE_CONFIG"]
    directory, file_name = config_path.rsplit("/", 1)
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in pod_spec(rendered)["volumes"] if v["name"] == mount["name"]]
    config_map = one(rendered, "ConfigMap")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    # the config it carries passes the gateway's own validation
    sample = tmp_path / file_name
    sample.write_text(config_map["data"][file_name])
    # the key hash comes from the Secret the Deployment maps into the environment; without it the config is
    # refused (the pod must not start unauthenticated)
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert secret_env["JUMPGATE_API_KEY_SHA256"] == {"name": "jumpgate-api-keys", "key": "default-sha256"}
    env = {k: v for k, v in os.environ.items() if k != "JUMPGATE_API_KEY_SHA256"}
    refused = subprocess.run([sys.executable, "-m", "service", "check-config", str(sample)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "JUMPGATE_API_KEY_SHA256" in refused.stderr
    env["JUMPGATE_API_KEY_SHA256"] = hashlib.sha256(b"a-test-key").hexdigest()
    done = subprocess.run([sys.executable, "-m", "service", "check-config", str(sample)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_service_account_has_an_irsa_role(rendered: list[Doc]) -> None:
    account = one(rendered, "ServiceAccount")
    assert pod_spec(rendered)["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", role)


def test_selectors_agree(rendered: list[Doc]) -> None:
    labels = pod_labels(rendered)
    deployment = one(rendered, "Deployment")
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    service = one(rendered, "Service")
    assert selects(service["spec"]["selector"], labels)
    assert selects(one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(rendered, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], labels)
    monitor = one(rendered, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container(rendered)["ports"]}


def test_hpa_scales_the_deployment_on_cpu_and_inflight_requests(rendered: list[Doc]) -> None:
    hpa = one(rendered, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": one(rendered, "Deployment")["metadata"]["name"]}
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "jumpgate_inflight_requests"
    # the PDB lets a node drain proceed at the HPA's minimum
    pdb = one(rendered, "PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable", 0) >= 1 or hpa["spec"]["minReplicas"] > pdb["minAvailable"]


def test_prometheus_adapter_serves_the_hpa_metric() -> None:
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())["rules"]["custom"]
    hpa = one(kustomize.build(TREES["base"]), "HorizontalPodAutoscaler")
    wanted = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    served = {}
    for rule in rules:
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)  # type: ignore[union-attr]
        name = re.sub(rule["name"]["matches"], rule["name"].get("as", "$0").replace("$0", r"\g<0>"), series)
        served[name] = rule
    assert wanted in served
    assert served[wanted]["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_probe_and_scrape_paths_answer_on_a_real_gateway(rendered: list[Doc], image_server: Proc) -> None:
    c = container(rendered)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert httpx.get(image_server.url + c[probe]["httpGet"]["path"], timeout=10).status_code == 200
    (endpoint,) = one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    metrics = httpx.get(image_server.url + endpoint["path"], timeout=10).text
    assert re.search(r"^jumpgate_inflight_requests\{", metrics, re.MULTILINE)


def test_overlay_sets_namespace_image_and_role() -> None:
    docs = kustomize.build(TREES["overlay"])
    namespace = one(docs, "Namespace")["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")
    assert container(docs)["image"].endswith("/jumpgate:0.1.0")
    assert "REPLACE-ME" not in one(docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert one(docs, "ServiceMonitor")["metadata"]["labels"]["release"]


def test_headless_metrics_service_is_what_prometheus_discovers(rendered: list[Doc]) -> None:
    metrics = one(rendered, "Service", "jumpgate-metrics")
    assert metrics["spec"]["clusterIP"] == "None"
    labels = pod_spec_labels(rendered)
    assert all(labels.get(k) == v for k, v in metrics["spec"]["selector"].items())
    scrape = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    assert "jumpgate-metrics." in scrape


def pod_spec_labels(rendered: list[Doc]) -> dict[str, str]:
    labels: dict[str, str] = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels
