"""Static checks of docker-compose.yml and deploy/Dockerfile (no Docker engine needed).

Each test reads the files as Compose / Docker would and fails if the stack would be wired
wrongly: a KRaft node that cannot form its quorum, workers pointed at a listener that does
not exist, a start order that lets workers race topic creation, an image running as root.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

ROUTER_SERVICES = ("topic-init", "router-1", "router-2")
WORKERS = ("router-1", "router-2")


# --------------------------------------------------------------------------- helpers


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services mapping"
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two Compose syntaxes it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {k: (v[0] if v else "") for k, *v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def _kafka_env() -> dict[str, str]:
    return _env(_services()["kafka"])


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` -> {NAME: (host, port)} (empty host means all interfaces)."""
    out: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, address = item.partition("://")
        assert sep, f"listener {item!r} is not NAME://host:port"
        host, _, port = address.rpartition(":")
        assert port.isdigit(), f"listener {item!r} has no numeric port"
        assert name not in out, f"listener name {name} is declared twice"
        out[name] = (host, int(port))
    return out


def _protocol_map() -> dict[str, str]:
    raw = _kafka_env()["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    return dict(item.strip().split(":", 1) for item in raw.split(",") if item.strip())


def _voters() -> list[tuple[int, str, int]]:
    """`id@host:port,...` -> [(id, host, port)]."""
    out = []
    for item in _kafka_env()["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","):
        node_id, _, address = item.strip().partition("@")
        host, _, port = address.rpartition(":")
        assert node_id.isdigit() and port.isdigit(), f"bad quorum voter {item!r}"
        out.append((int(node_id), host, int(port)))
    return out


def _published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Short-syntax `ports:` entries -> {host_port: container_port}."""
    out: dict[int, int] = {}
    for entry in service.get("ports") or []:
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) >= 2, f"port {entry!r} is not published on a fixed host port"
        out[int(parts[-2])] = int(parts[-1])
    return out


def _internal_listener() -> tuple[str, int]:
    """The advertised (host, port) that other containers on the compose network must use."""
    advertised = _listeners(_kafka_env()["KAFKA_ADVERTISED_LISTENERS"])
    internal = [addr for addr in advertised.values() if addr[0] == "kafka"]
    assert len(internal) == 1, f"expected one listener advertised as host 'kafka': {advertised}"
    return internal[0]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and `\\` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def _exec_form(args: str) -> list[str]:
    """An ENTRYPOINT/CMD argument as an argv list (JSON exec form or shell form)."""
    if args.startswith("["):
        value = yaml.safe_load(args)  # JSON arrays are valid YAML flow sequences
        assert isinstance(value, list)
        return [str(v) for v in value]
    return ["/bin/sh", "-c", args]


def _image_entrypoint() -> list[str]:
    entries = [args for kw, args in _final_stage() if kw == "ENTRYPOINT"]
    assert entries, "final image stage has no ENTRYPOINT"
    return _exec_form(entries[-1])


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for kw, args in _final_stage():
        if kw == "ENV":
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                assert sep, f"use ENV KEY=value form, got {token!r}"
                env[key] = value
    return env


def _argv(service: dict[str, Any]) -> list[str]:
    """What the container actually executes: entrypoint (service or image) + command."""
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        argv = _image_entrypoint()
    else:
        argv = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
    command = service.get("command")
    if command is None:
        cmds = [args for kw, args in _final_stage() if kw == "CMD"]
        return argv + (_exec_form(cmds[-1]) if cmds else [])
    return argv + (shlex.split(command) if isinstance(command, str) else list(command))


def _effective_env(service: dict[str, Any]) -> dict[str, str]:
    """Image ENV overlaid by the service's environment, as the container sees it."""
    return {**_image_env(), **_env(service)}


# --------------------------------------------------------------------------- compose: kafka


def test_all_services_present() -> None:
    assert {"kafka", *ROUTER_SERVICES} <= set(_services())


def test_kafka_uses_the_apache_image_pinned_to_a_tag() -> None:
    image = _services()["kafka"]["image"]
    name, _, tag = image.partition(":")
    assert name in {"apache/kafka", "docker.io/apache/kafka"}, image
    assert tag and tag != "latest", f"pin the Kafka image to a release tag, got {image!r}"


def test_kafka_runs_combined_kraft_node() -> None:
    env = _kafka_env()
    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    # The image refuses to start in KRaft mode without a cluster id (its default or ours).
    assert env.get("CLUSTER_ID", "x").strip(), "CLUSTER_ID must not be empty"


def test_quorum_voters_match_node_id_and_controller_listener() -> None:
    env = _kafka_env()
    node_id = int(env["KAFKA_NODE_ID"])
    voters = _voters()
    assert [v[0] for v in voters] == [node_id], "single node: it must be the only voter"
    _, voter_host, voter_port = voters[0]
    service = _services()["kafka"]
    assert voter_host in {"kafka", service.get("hostname"), "localhost"}, voter_host

    controller_names = [n.strip() for n in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")]
    listeners = _listeners(env["KAFKA_LISTENERS"])
    controller_ports = {listeners[n][1] for n in controller_names if n in listeners}
    assert voter_port in controller_ports, (
        f"voter port {voter_port} is not a controller listener port {controller_ports}"
    )


def test_listener_names_are_consistent() -> None:
    env = _kafka_env()
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = _protocol_map()
    controller_names = {n.strip() for n in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")}

    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    assert controller_names <= set(listeners), "controller listener is not bound"
    assert not controller_names & set(advertised), "controller listener must not be advertised"
    for name, (_, port) in advertised.items():
        assert name in listeners, f"advertised listener {name} is not bound"
        assert listeners[name][1] == port, f"{name} advertised on {port}, bound elsewhere"
    inter_broker = env.get("KAFKA_INTER_BROKER_LISTENER_NAME")
    if inter_broker:
        assert inter_broker in advertised


def test_internal_listener_is_the_one_workers_use() -> None:
    host, port = _internal_listener()
    assert (host, port) == ("kafka", 9092)
    for name in ROUTER_SERVICES:
        bootstrap = _effective_env(_services()[name]).get("KAFKA_BOOTSTRAP_SERVERS")
        assert bootstrap == f"{host}:{port}", f"{name} bootstraps from {bootstrap!r}"


def test_external_listener_published_for_host_clients() -> None:
    env = _kafka_env()
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    external = [n for n, (h, _) in advertised.items() if h in {"localhost", "127.0.0.1"}]
    assert len(external) == 1, f"expected one listener advertised on localhost: {advertised}"
    (name,) = external
    assert advertised[name][1] == 29092
    published = _published_ports(_services()["kafka"])
    assert published.get(29092) == listeners[name][1], (
        f"host port 29092 must map to the {name} listener's container port"
    )
    # The internal listener advertises `kafka`, which does not resolve on the host.
    assert _internal_listener()[1] not in published.values(), "do not publish the internal port"


def test_single_node_internal_topic_replication() -> None:
    env = _kafka_env()
    # Defaults are 3 (offsets, transaction log) and 2 (min ISR): unsatisfiable on one broker,
    # so consumer groups (Faust) and transactions would never work.
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert int(env[key]) == 1, f"{key} must be 1 on a single node"


def test_kafka_healthcheck_queries_the_broker() -> None:
    check = _services()["kafka"].get("healthcheck")
    assert check, "kafka needs a healthcheck for depends_on: service_healthy"
    test = check["test"]
    text = test if isinstance(test, str) else " ".join(test)
    assert "/opt/kafka/bin/kafka-topics.sh" in text
    assert "--bootstrap-server" in text
    env = _kafka_env()
    controller_names = {n.strip() for n in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")}
    listeners = _listeners(env["KAFKA_LISTENERS"])
    broker_ports = {p for n, (_, p) in listeners.items() if n not in controller_names}
    assert any(f":{port}" in text for port in broker_ports), "probe a broker listener port"


# --------------------------------------------------------------------------- compose: routers


@pytest.mark.parametrize("name", ROUTER_SERVICES)
def test_router_services_build_from_deploy_dockerfile(name: str) -> None:
    build = _services()[name].get("build")
    assert isinstance(build, dict), f"{name} must build the router image"
    context = ROOT / build.get("context", ".")
    assert context.resolve() == ROOT, "build context must be the repo root"
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.resolve() == DOCKERFILE.resolve()
    assert DOCKERFILE.is_file()


def test_topic_init_runs_after_kafka_is_healthy() -> None:
    service = _services()["topic-init"]
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert _argv(service) == ["router", "topics", "create"]
    assert service.get("restart", "no") == "no", "a one-shot job must not restart"


@pytest.mark.parametrize("name", WORKERS)
def test_workers_start_after_topics_exist(name: str) -> None:
    service = _services()[name]
    depends_on = service["depends_on"]
    assert depends_on["topic-init"]["condition"] == "service_completed_successfully"
    assert _argv(service) == ["router", "worker"]


def test_workers_serve_http_on_all_interfaces_on_distinct_host_ports() -> None:
    host_ports: list[int] = []
    for name in WORKERS:
        service = _services()[name]
        env = _effective_env(service)
        assert env.get("ROUTER_WEB_HOST") == "0.0.0.0", f"{name} binds loopback only"
        web_port = int(env.get("ROUTER_WEB_PORT", "6066"))
        published = _published_ports(service)
        assert web_port in published.values(), f"{name} does not publish its web port"
        host_ports += [h for h, c in published.items() if c == web_port]
    assert len(host_ports) == len(set(host_ports)), f"workers clash on host ports {host_ports}"


def test_workers_share_one_consumer_group() -> None:
    app_ids = {_effective_env(_services()[n]).get("ROUTER_APP_ID") for n in ROUTER_SERVICES}
    assert len(app_ids) == 1, f"router services disagree on ROUTER_APP_ID: {app_ids}"


def test_buyers_file_is_provided_by_the_image() -> None:
    copies: dict[str, str] = {}
    for kw, args in _final_stage():
        if kw == "COPY" and "--from" not in args:
            *sources, dest = [t for t in shlex.split(args) if not t.startswith("--")]
            for source in sources:
                copies[dest] = source
    for name in ROUTER_SERVICES:
        path = _effective_env(_services()[name]).get("ROUTER_BUYERS_FILE")
        assert path, f"{name} has no ROUTER_BUYERS_FILE"
        assert path in copies, f"{name}: {path} is not copied into the image"
        assert copies[path] == "deploy/buyers.example.yaml"
    assert _image_env().get("ROUTER_BUYERS_FILE") == "/etc/router/buyers.yaml"


def test_buyers_example_is_in_the_build_context() -> None:
    assert (ROOT / "deploy" / "buyers.example.yaml").is_file()
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("deploy", "deploy/buyers.example.yaml", "router", "pyproject.toml"):
        assert needed not in ignored, f".dockerignore drops {needed}, the build needs it"
    assert {".venv", ".git", "tests"} <= ignored


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_and_entrypoint() -> None:
    froms = [args for kw, args in _dockerfile_instructions() if kw == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms), froms
    assert _image_entrypoint() == ["router"]
    cmds = [args for kw, args in _final_stage() if kw == "CMD"]
    assert cmds and _exec_form(cmds[-1]) == ["worker"]
    exposed = {p for kw, args in _final_stage() if kw == "EXPOSE" for p in args.split()}
    assert "6066" in exposed


def test_dockerfile_does_not_run_as_root() -> None:
    users = [args for kw, args in _final_stage() if kw == "USER"]
    assert users, "final stage has no USER line: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"final USER is {users[-1]!r}"


def test_dockerfile_installs_package_without_extras() -> None:
    runs = " ".join(args for kw, args in _dockerfile_instructions() if kw == "RUN")
    installs = [cmd for cmd in runs.split("&&") if "pip install" in cmd]
    assert installs, "the package is never pip-installed"
    for cmd in installs:
        tokens = shlex.split(cmd)
        assert "-e" not in tokens and "--editable" not in tokens, "install must be non-editable"
        assert "[" not in cmd, f"no extras in the image install: {cmd.strip()!r}"
        assert "embedded" not in cmd and "dev" not in tokens


# --------------------------------------------------------------------------- compose: monitoring

MONITORING_IMAGES = {
    "prometheus": {"prom/prometheus", "docker.io/prom/prometheus"},
    "grafana": {"grafana/grafana", "grafana/grafana-oss", "docker.io/grafana/grafana"},
}
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
SCRAPE_JOB = "lead-router"


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """`volumes:` entries -> [(source, target, read_only)]; bind sources start with . or /."""
    out: list[tuple[str, str, bool]] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
            out.append((source, target, bool(entry.get("read_only"))))
            continue
        parts = str(entry).split(":")
        assert len(parts) in (2, 3), f"volume {entry!r} is not source:target[:mode]"
        mode = parts[2].split(",") if len(parts) == 3 else []
        out.append((parts[0], parts[1], "ro" in mode))
    return out


def _binds(service: dict[str, Any]) -> dict[str, tuple[Path, bool]]:
    """Bind mounts only: {container path: (host path, read_only)}."""
    return {
        target: ((ROOT / source).resolve(), read_only)
        for source, target, read_only in _mounts(service)
        if source.startswith((".", "/"))
    }


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The host file a container path resolves to through the service's bind mounts."""
    best: tuple[str, Path] | None = None
    for target, (host, _) in _binds(service).items():
        inside = container_path == target or container_path.startswith(target.rstrip("/") + "/")
        if inside and (best is None or len(target) > len(best[0])):
            best = (target, host)
    if best is None:
        return None
    rest = container_path[len(best[0]) :].lstrip("/")
    return best[1] / rest if rest else best[1]


def _loopback_ports(service: dict[str, Any]) -> dict[int, int]:
    """`127.0.0.1:host:container` entries -> {host_port: container_port}; others fail."""
    out: dict[int, int] = {}
    for entry in service.get("ports") or []:
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) == 3 and parts[0] == "127.0.0.1", (
            f"publish {entry!r} on 127.0.0.1 only: it has no authentication worth the name"
        )
        out[int(parts[1])] = int(parts[2])
    return out


def _prometheus_config() -> dict[str, Any]:
    assert PROMETHEUS_CONFIG.is_file(), f"{PROMETHEUS_CONFIG.relative_to(ROOT)} is missing"
    data = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert isinstance(data, dict), "prometheus.yml is not a mapping"
    return data


def _grafana_env() -> dict[str, str]:
    return _env(_services()["grafana"])


def test_monitoring_services_present() -> None:
    assert {"prometheus", "grafana"} <= set(_services())


@pytest.mark.parametrize("name", sorted(MONITORING_IMAGES))
def test_monitoring_images_are_pinned(name: str) -> None:
    image = _services()[name]["image"]
    repo, _, tag = image.partition(":")
    assert repo in MONITORING_IMAGES[name], image
    assert tag and tag != "latest", f"pin {name} to a release tag, got {image!r}"
    assert any(ch.isdigit() for ch in tag), f"{image!r} is not a version tag"


def test_every_bind_mount_source_exists() -> None:
    for name, service in _services().items():
        for target, (host, _) in _binds(service).items():
            assert host.exists(), f"{name}: {target} is mounted from missing {host}"
            assert host.is_relative_to(ROOT), f"{name}: mount {host} is outside the repo"


def test_prometheus_mounts_its_config_and_rules_read_only() -> None:
    binds = _binds(_services()["prometheus"])
    assert binds.get("/etc/prometheus/prometheus.yml") == (PROMETHEUS_CONFIG.resolve(), True)
    assert binds.get("/etc/prometheus/alerts.yml") == (PROMETHEUS_RULES.resolve(), True)


def test_prometheus_loads_the_mounted_rules() -> None:
    rule_files = _prometheus_config().get("rule_files") or []
    # Relative rule_files paths resolve against the config file's directory.
    resolved = {f if f.startswith("/") else f"/etc/prometheus/{f}" for f in rule_files}
    assert "/etc/prometheus/alerts.yml" in resolved, f"rule_files: {rule_files}"


def test_prometheus_scrapes_every_worker() -> None:
    jobs = {j["job_name"]: j for j in _prometheus_config().get("scrape_configs") or []}
    assert SCRAPE_JOB in jobs, f"dashboards and alerts select job={SCRAPE_JOB!r}: {list(jobs)}"
    job = jobs[SCRAPE_JOB]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
    for name in WORKERS:
        port = int(_effective_env(_services()[name]).get("ROUTER_WEB_PORT", "6066"))
        assert f"{name}:{port}" in targets, f"{name}:{port} is not scraped: {targets}"


def test_monitoring_ports_published_on_loopback() -> None:
    assert _loopback_ports(_services()["prometheus"]) == {9090: 9090}
    assert _loopback_ports(_services()["grafana"]) == {3000: 3000}


def test_grafana_reads_provisioning_and_dashboards() -> None:
    grafana = _services()["grafana"]
    datasources = _host_path(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert datasources == (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    providers_file = _host_path(grafana, "/etc/grafana/provisioning/dashboards/router.yml")
    assert providers_file == (GRAFANA_DIR / "provisioning" / "dashboards" / "router.yml")
    assert providers_file.is_file()
    for provider in yaml.safe_load(providers_file.read_text())["providers"]:
        host = _host_path(grafana, provider["options"]["path"])
        assert host == (GRAFANA_DIR / "dashboards").resolve(), provider["options"]["path"]
        assert any(host.glob("*.json")), "the dashboard provider finds no dashboard"
    for _, (_, read_only) in _binds(grafana).items():
        assert read_only, "mount Grafana's provisioning and dashboards read-only"


def test_grafana_datasource_points_at_the_prometheus_service() -> None:
    grafana = _services()["grafana"]
    path = _host_path(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert path is not None
    (source,) = yaml.safe_load(path.read_text())["datasources"]
    host, _, port = source["url"].removeprefix("http://").rstrip("/").partition(":")
    assert host == "prometheus" and host in _services()
    assert int(port) in _loopback_ports(_services()["prometheus"]).values()
    depends_on = grafana.get("depends_on")
    assert depends_on and "prometheus" in depends_on


def test_grafana_home_dashboard_is_the_provisioned_overview() -> None:
    grafana = _services()["grafana"]
    container_path = _grafana_env()["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    host = _host_path(grafana, container_path)
    assert host == (GRAFANA_DIR / "dashboards" / "router-overview.json").resolve()
    assert host.is_file()
    # Grafana shows the home dashboard only if it was provisioned, with a uid.
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "router.yml").read_text()
    )["providers"]
    assert any(container_path.startswith(p["options"]["path"] + "/") for p in providers)
    assert yaml.safe_load(host.read_text()).get("uid")


def test_grafana_allows_anonymous_viewers_only() -> None:
    env = _grafana_env()
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
