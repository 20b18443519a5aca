"""One scrape per pod, with jumpgate's own labels intact, in the namespace every sample names.

Targets are counted the way the Prometheus Operator finds them (tests/deploy/k8s.py): Services a ServiceMonitor
selects × its endpoints' ports × the pods each Service selects; pods a PodMonitor selects × its ports. A pod
scraped twice doubles every sum the rules and the dashboard compute."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.k8s import (
    TEST_KEY_SHA256,
    TREES,
    Doc,
    install_copy,
    monitor_validator,
    namespace,
    one,
    per_pod,
    pod_monitor_targets,
    pods,
    render,
    service_monitor_targets,
)
from tests.deploy.test_prometheus import exported
from tests.procs import ROOT, free_port, running_stack

PROMETHEUS = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_copy(tmp_path_factory.mktemp("k8s-scrape"))


@pytest.fixture(scope="module", params=sorted(TREES))
def rendered(request: pytest.FixtureRequest, tree: Path) -> list[Doc]:
    return render(tree / TREES[request.param])


@pytest.fixture(scope="module")
def overlay(tree: Path) -> list[Doc]:
    return render(tree / TREES["overlay"])


def podmonitor() -> Doc:
    doc: Doc = yaml.safe_load((PROMETHEUS / "podmonitor.yaml").read_text())
    return doc


def metrics_port(docs: list[Doc]) -> int:
    (pod,) = pods(docs)
    return dict(pod.ports)["metrics"]


def test_the_service_monitor_scrapes_each_pod_once_on_its_metrics_port(rendered: list[Doc]) -> None:
    targets = service_monitor_targets(one(rendered, "ServiceMonitor"), rendered)
    assert per_pod(targets) == {"jumpgate": 1}
    (target,) = targets
    assert target.port == metrics_port(rendered)
    assert dict(target.labels)["service"] == "jumpgate-metrics"


def test_the_count_sees_a_double_scrape(overlay: list[Doc]) -> None:
    """The counter is not vacuous: the API Service carrying the monitor's labels and a metrics port (as both
    Services did before) makes two targets per pod."""
    docs = copy.deepcopy(overlay)
    api = one(docs, "Service", "jumpgate")
    assert "metrics" not in {p["name"] for p in api["spec"]["ports"]}  # the API Service offers no scrape port
    api["metadata"]["labels"].update(one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"])
    api["spec"]["ports"].append({"name": "metrics", "port": 9464, "targetPort": "metrics"})
    assert per_pod(service_monitor_targets(one(docs, "ServiceMonitor"), docs)) == {"jumpgate": 2}


def test_the_pod_monitor_alternative_scrapes_each_pod_once(overlay: list[Doc]) -> None:
    monitor = podmonitor()
    monitor_validator("PodMonitor").validate(monitor)
    targets = pod_monitor_targets(monitor, overlay)
    assert per_pod(targets) == {"jumpgate": 1}
    assert targets[0].port == metrics_port(overlay)


def alert_job_patterns() -> set[str]:
    text = (PROMETHEUS / "rules" / "alerts.yml").read_text()
    patterns = set(re.findall(r'job=~"([^"]+)"', text))
    assert patterns, "the alert rules match jobs by name"
    return patterns


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_jumpgate_labels_survive_the_scrape(kind: str, overlay: list[Doc]) -> None:
    """The Operator labels every target (namespace, pod, endpoint = the port name, job, ...). Where that clashes
    with a label jumpgate exports, honorLabels keeps jumpgate's: `endpoint` is the SageMaker endpoint id the
    recording rules group by. And the job name is one the alert rules match."""
    if kind == "ServiceMonitor":
        monitor = one(overlay, "ServiceMonitor")
        endpoints, targets = monitor["spec"]["endpoints"], service_monitor_targets(monitor, overlay)
    else:
        monitor = podmonitor()
        endpoints, targets = monitor["spec"]["podMetricsEndpoints"], pod_monitor_targets(monitor, overlay)
    jumpgate_labels = set().union(*exported().values()) - {"job", "instance"}
    (target,) = targets
    clashes = set(dict(target.labels)) & jumpgate_labels
    assert clashes == {"endpoint"}
    assert all(e.get("honorLabels") is True for e in endpoints)
    assert all(re.fullmatch(p, dict(target.labels)["job"]) for p in alert_job_patterns())


def test_namespaces_agree_across_the_overlay_and_the_prometheus_samples(overlay: list[Doc]) -> None:
    ns = one(overlay, "Namespace")["metadata"]["name"]
    assert namespace(one(overlay, "ServiceMonitor")) == ns
    assert podmonitor()["metadata"]["namespace"] == ns
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (k8s_job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "jumpgate-k8s"]
    (sd,) = k8s_job["dns_sd_configs"]
    service = one(overlay, "Service", "jumpgate-metrics")
    assert sd["names"] == [f"{service['metadata']['name']}.{ns}.svc.cluster.local"]
    assert service["spec"]["clusterIP"] == "None"  # headless: one A record per ready pod
    assert sd["port"] == metrics_port(overlay) == service["spec"]["ports"][0]["port"]


def test_monitoring_namespace_agrees_between_the_network_policy_and_the_adapter(overlay: list[Doc]) -> None:
    policy = one(overlay, "NetworkPolicy")["spec"]["ingress"]
    allowed = {sel["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in policy for sel in rule["from"] if "namespaceSelector" in sel
               and "kubernetes.io/metadata.name" in sel["namespaceSelector"].get("matchLabels", {})}
    adapter = (ROOT / "deploy" / "kubernetes" / "prometheus-adapter" / "rules.yaml").read_text()
    (installed_in,) = re.findall(r"prometheus-adapter prometheus-community/prometheus-adapter -n (\S+)", adapter)
    assert allowed == {installed_in}


def test_the_metrics_listener_serves_the_scrape_and_the_api_port_does_not(overlay: list[Doc],
                                                                           tmp_path: Path) -> None:
    """The overlay's config, run for real in front of the simulator: /metrics answers on the metrics listener
    and only there (the API port, which clients reach, answers 404)."""
    listen_port = free_port()

    def config_for(runtime_url: str) -> Doc:
        config: Doc = yaml.safe_load(one(overlay, "ConfigMap")["data"]["jumpgate.yaml"])
        config["aws"] = {"region": "us-east-1", "runtime_url": runtime_url,
                         "credentials": {"access_key_id": "AKIDTEST", "secret_access_key": "test"}}
        config["metrics"]["listen"] = f"127.0.0.1:{listen_port}"
        return config

    with running_stack(tmp_path, config_for, env={"JUMPGATE_API_KEY_SHA256": TEST_KEY_SHA256}) as (_, gw):
        scraped = httpx.get(f"http://127.0.0.1:{listen_port}/metrics", timeout=10)
        assert scraped.status_code == 200 and "jumpgate_inflight_requests" in scraped.text
        assert httpx.get(gw.url + "/metrics", timeout=10).status_code == 404
