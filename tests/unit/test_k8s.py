"""Static checks of the plain Kubernetes manifests in deploy/k8s (no cluster needed).

Each test reads the manifests as the API server / kustomize would and fails on wiring that
would only show up in a cluster: probes aimed at a port name that does not exist, a Service or
PodMonitor that selects no pod (or the topic-init Job's pod), a buyers ConfigMap drifting from
the example file, a manifest that kustomize never applies.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config_file import parse_buyers

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
BUYERS_EXAMPLE = ROOT / "deploy" / "buyers.example.yaml"
KUSTOMIZATION = "kustomization.yaml"

EXPECTED = {
    "worker-deployment.yaml": ("apps/v1", "Deployment"),
    "buyers-configmap.yaml": ("v1", "ConfigMap"),
    "metrics-service.yaml": ("v1", "Service"),
    "podmonitor.yaml": ("monitoring.coreos.com/v1", "PodMonitor"),
    "topic-init-job.yaml": ("batch/v1", "Job"),
}
# Settings both the workers and the topic initialiser read: they must agree, or the Job
# creates topics for another cluster, app id or buyers file than the workers use.
SHARED_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "ROUTER_APP_ID",
    "ROUTER_BUYERS_FILE",
    "ROUTER_PARTITIONS",
    "ROUTER_REPLICATION_FACTOR",
)


# --------------------------------------------------------------------------- helpers


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml") if p.name != KUSTOMIZATION)


def _docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return docs


def _one(name: str) -> dict[str, Any]:
    docs = _docs(K8S / name)
    assert len(docs) == 1, f"{name}: expected one object, found {len(docs)}"
    return docs[0]


def _deployment() -> dict[str, Any]:
    return _one("worker-deployment.yaml")


def _job() -> dict[str, Any]:
    return _one("topic-init-job.yaml")


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per pod"
    return containers[0]


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in container.get("env") or []:
        assert "value" in item, f"env {item['name']} must be a literal value here"
        assert isinstance(item["value"], str), f"env {item['name']} must be a string"
        out[item["name"]] = item["value"]
    return out


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions, or a bare map) selects."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _image_entrypoint() -> list[str]:
    """The final stage's ENTRYPOINT of deploy/Dockerfile (exec form)."""
    entrypoints = [
        line.strip().partition(" ")[2]
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip().upper().startswith("ENTRYPOINT ")
    ]
    assert entrypoints, "deploy/Dockerfile has no ENTRYPOINT"
    value = yaml.safe_load(entrypoints[-1])
    return [str(v) for v in value] if isinstance(value, list) else shlex.split(value)


def _argv(container: dict[str, Any]) -> list[str]:
    """What the container runs: `command` (else the image ENTRYPOINT) + `args`."""
    command = container.get("command") or _image_entrypoint()
    return [*command, *(container.get("args") or [])]


def _port_names(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports") or [] if "name" in p}


def _buyers_mount(workload: dict[str, Any]) -> str:
    """The directory the buyers ConfigMap is mounted at in this workload's container."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {
        v["name"]: v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v
    }
    configmap = _one("buyers-configmap.yaml")["metadata"]["name"]
    mounts = [
        m
        for m in _container(workload).get("volumeMounts") or []
        if volumes.get(m["name"]) == configmap
    ]
    assert len(mounts) == 1, "the buyers ConfigMap must be mounted once"
    assert "subPath" not in mounts[0], "a subPath mount never sees ConfigMap updates"
    assert mounts[0].get("readOnly") is True
    return mounts[0]["mountPath"]


# --------------------------------------------------------------------------- all manifests


def test_every_expected_manifest_exists_with_its_kind() -> None:
    names = {p.name for p in _manifest_files()}
    assert set(EXPECTED) <= names, f"missing: {set(EXPECTED) - names}"
    for name, (api_version, kind) in EXPECTED.items():
        obj = _one(name)
        assert (obj["apiVersion"], obj["kind"]) == (api_version, kind), name
        assert obj["metadata"].get("name"), f"{name} has no metadata.name"


def test_every_manifest_loads_and_names_are_unique() -> None:
    seen: set[tuple[str, str]] = set()
    for path in _manifest_files():
        docs = _docs(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in seen, f"{key} is declared twice"
            seen.add(key)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _one(KUSTOMIZATION)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization.get("resources") or []
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    assert set(resources) == {p.name for p in _manifest_files()}, (
        "kustomization.yaml resources must list every manifest in deploy/k8s, and only those"
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_every_object() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(result.stdout) if d}
    declared = {(d["kind"], d["metadata"]["name"]) for p in _manifest_files() for d in _docs(p)}
    assert built == declared


def test_workloads_run_the_same_image_from_deploy_dockerfile() -> None:
    images = {_container(_deployment())["image"], _container(_job())["image"]}
    assert len(images) == 1, f"the Job and the workers must run one image: {images}"
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest", f"pin the image to a tag: {image!r}"
    assert "deploy/Dockerfile" in (K8S / "worker-deployment.yaml").read_text(), (
        "say in a comment that the image is built from deploy/Dockerfile"
    )


# --------------------------------------------------------------------------- Deployment


def test_deployment_runs_at_least_two_workers() -> None:
    deployment = _deployment()
    assert deployment["spec"]["replicas"] >= 2
    assert _argv(_container(deployment)) == ["router", "worker"]


def test_deployment_selector_matches_its_pod_template() -> None:
    deployment = _deployment()
    assert _selects(deployment["spec"]["selector"], _pod_labels(deployment))


def test_deployment_sets_requests_and_limits() -> None:
    resources = _container(_deployment()).get("resources") or {}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(kind) or {}), f"set {kind} cpu and memory"


def test_probes_hit_healthz_and_ready_on_the_named_http_port() -> None:
    container = _container(_deployment())
    ports = _port_names(container)
    assert ports.get("http") == 6066, "the container port must be named http (6066)"
    env = _env(container)
    assert int(env.get("ROUTER_WEB_PORT", "6066")) == ports["http"]
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/ready"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} must GET {path}"
        assert get["port"] == "http", f"{probe} must target the named port"
    startup = container.get("startupProbe")
    if startup:
        assert startup["httpGet"]["path"] == "/healthz"
        assert startup["httpGet"]["port"] == "http"


def test_worker_binds_all_interfaces() -> None:
    # The default (127.0.0.1) is unreachable for the kubelet's probes and for Prometheus.
    assert _env(_container(_deployment())).get("ROUTER_WEB_HOST") == "0.0.0.0"


def test_grace_period_allows_a_clean_shutdown() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    assert pod.get("terminationGracePeriodSeconds", 30) >= 30


@pytest.mark.parametrize("name", ["worker-deployment.yaml", "topic-init-job.yaml"])
def test_pods_do_not_run_as_root(name: str) -> None:
    workload = _one(name)
    pod_context = workload["spec"]["template"]["spec"].get("securityContext") or {}
    container_context = _container(workload).get("securityContext") or {}
    context = {**pod_context, **container_context}
    assert context.get("runAsNonRoot") is True
    assert context.get("runAsUser", 10001) != 0
    assert container_context.get("allowPrivilegeEscalation") is False


@pytest.mark.parametrize("name", ["worker-deployment.yaml", "topic-init-job.yaml"])
def test_buyers_file_comes_from_the_configmap(name: str) -> None:
    workload = _one(name)
    env = _env(_container(workload))
    assert env.get("ROUTER_BUYERS_FILE") == "/etc/router/buyers.yaml"
    mount = _buyers_mount(workload)
    key = Path(env["ROUTER_BUYERS_FILE"]).relative_to(mount).as_posix()
    assert key in _one("buyers-configmap.yaml")["data"], f"no key {key!r} in the ConfigMap"


def test_read_only_root_leaves_faust_a_writable_data_dir() -> None:
    container = _container(_deployment())
    if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return
    workdirs = [
        line.split(None, 1)[1].strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip().upper().startswith("WORKDIR ")
    ]
    mounts = {m["mountPath"] for m in container.get("volumeMounts") or []}
    assert workdirs[-1] in mounts, f"Faust writes its data dir under {workdirs[-1]}: mount it"


def test_deployment_env_has_what_the_worker_needs() -> None:
    env = _env(_container(_deployment()))
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "ROUTER_APP_ID", "ROUTER_BUYERS_FILE"):
        assert env.get(key), f"{key} is not set"


# --------------------------------------------------------------------------- ConfigMap


def test_configmap_buyers_is_the_example_file_verbatim() -> None:
    data = _one("buyers-configmap.yaml")["data"]
    assert data["buyers.yaml"] == BUYERS_EXAMPLE.read_text(), (
        "deploy/k8s/buyers-configmap.yaml drifted from deploy/buyers.example.yaml"
    )


def test_configmap_buyers_validates() -> None:
    text = _one("buyers-configmap.yaml")["data"]["buyers.yaml"]
    buyers = parse_buyers(text, "deploy/k8s/buyers-configmap.yaml#buyers.yaml")
    assert buyers, "the buyers file lists no buyer"


def test_workloads_mount_the_configmap_that_exists() -> None:
    configmap = _one("buyers-configmap.yaml")["metadata"]["name"]
    for workload in (_deployment(), _job()):
        names = {
            v["configMap"]["name"]
            for v in workload["spec"]["template"]["spec"].get("volumes") or []
            if "configMap" in v
        }
        assert names == {configmap}, f"{workload['metadata']['name']} mounts {names}"


# --------------------------------------------------------------------------- Service


def test_service_selects_the_workers_on_the_http_port() -> None:
    service = _one("metrics-service.yaml")
    selector = service["spec"]["selector"]
    assert selector, "a Service without a selector gets no endpoints"
    assert _selects(selector, _pod_labels(_deployment()))
    assert not _selects(selector, _pod_labels(_job())), "the Service must not pick the Job"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["http"]["port"] == 6066
    target = ports["http"].get("targetPort", ports["http"]["port"])
    container_ports = _port_names(_container(_deployment()))
    assert target in container_ports or target in container_ports.values()


# --------------------------------------------------------------------------- PodMonitor


def test_podmonitor_scrapes_the_workers_metrics() -> None:
    monitor = _one("podmonitor.yaml")
    spec = monitor["spec"]
    assert _selects(spec["selector"], _pod_labels(_deployment()))
    assert not _selects(spec["selector"], _pod_labels(_job()))
    endpoints = spec["podMetricsEndpoints"]
    assert endpoints, "no podMetricsEndpoints"
    for endpoint in endpoints:
        assert endpoint["port"] == "http"
        assert endpoint.get("path", "/metrics") == "/metrics"
    assert "http" in _port_names(_container(_deployment()))


def test_podmonitor_job_label_is_lead_router() -> None:
    # Dashboards and alert rules select job="lead-router"; without jobLabel the operator
    # names the job "<namespace>/<podmonitor name>".
    spec = _one("podmonitor.yaml")["spec"]
    label = spec.get("jobLabel")
    assert label, "set jobLabel so the scrape job is named lead-router"
    assert _pod_labels(_deployment()).get(label) == "lead-router"


# --------------------------------------------------------------------------- Job


def test_job_creates_topics_once() -> None:
    job = _job()
    assert _argv(_container(job)) == ["router", "topics", "create"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert isinstance(job["spec"].get("backoffLimit"), int)


def test_job_and_workers_agree_on_shared_settings() -> None:
    worker_env = _env(_container(_deployment()))
    job_env = _env(_container(_job()))
    for key in SHARED_ENV:
        assert worker_env.get(key) == job_env.get(key), f"{key} differs: Job vs workers"
