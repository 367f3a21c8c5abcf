"""The deploy files (issue 20 point 5), checked offline: the Kubernetes manifests against
the Kubernetes JSON schemas bundled with ``kubernetes-validate`` (strict: unknown fields
fail), the Dockerfile parsed, and both held to what the code says: the ``qc serve`` the
image runs, the port it binds, ``/healthz``, and every QC_* name a Settings field.

No Docker engine runs here, so the image is not built in the suite; what can be judged
without building it is judged.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from qc.cli import app as qc_cli
from qc.serving import GRACEFUL_S
from server.kit.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.37.0"
PORT = 8000  # `qc serve --port`, EXPOSE, containerPort, compose's published port


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _container(deployment: str) -> dict[str, Any]:
    (container,) = _one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def _dockerfile() -> DockerfileParser:
    return DockerfileParser(str(DEPLOY / "Dockerfile"))


def _final_stage(kind: str) -> list[str]:
    """The values of one instruction in the image's last stage."""
    structure = _dockerfile().structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return [ins["value"] for ins in structure[last_from:] if ins["instruction"] == kind]


def _settings_env(name: str) -> bool:
    return name.startswith("QC_") and name[3:].lower() in Settings.model_fields


@pytest.mark.parametrize("doc", _manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_against_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validation_refuses_what_kubernetes_would() -> None:
    """The validator is not a rubber stamp: a misspelt field and a wrong type fail."""
    hpa = copy.deepcopy(_one("HorizontalPodAutoscaler", "qc-api"))
    hpa["spec"]["minReplica"] = hpa["spec"].pop("minReplicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)
    api = copy.deepcopy(_one("Deployment", "qc-api"))
    api["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSION, strict=True)


def test_the_hpa_is_the_seeds() -> None:
    spec = _one("HorizontalPodAutoscaler", "qc-api")["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "qc-api",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (10, 100)
    cpu, rps = spec["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert rps["pods"]["metric"]["name"] == "requests_per_second"
    assert rps["pods"]["target"] == {"type": "AverageValue", "averageValue": "100"}
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_probes_ports_and_shutdown_of_the_api_match_the_server() -> None:
    from server.app import create_app

    routes = {getattr(r, "path", None) for r in create_app(Settings()).routes}
    assert "/healthz" in routes
    deployment = _one("Deployment", "qc-api")
    pod, container = deployment["spec"]["template"]["spec"], _container("qc-api")
    assert container["ports"] == [{"name": "http", "containerPort": PORT}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", str(PORT)]
    # preStop sleep, then `qc serve`'s graceful shutdown, within the grace
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + GRACEFUL_S + 5
    assert pod["securityContext"]["runAsNonRoot"] is True
    service = _one("Service", "qc-api")["spec"]
    assert service["ports"][0]["targetPort"] == "http"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    pdb = _one("PodDisruptionBudget", "qc-api")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_qc_name_in_the_manifests_and_compose_is_a_setting() -> None:
    names: set[str] = set()
    for doc in _manifests():
        names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in container.get("env", [])}
                refs = {
                    r.get("configMapRef", r.get("secretRef", {}))["name"]
                    for r in container["envFrom"]
                }
                assert refs == {"qc-config", "qc-secrets"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for service in ("api", "worker", "waiting-room"):
        names |= set(compose["services"][service]["environment"])
    names |= {e.split("=")[0] for v in _final_stage("ENV") for e in shlex.split(v)}
    assert {"QC_DATABASE_URL", "QC_REDIS_URL", "QC_SECRET_KEY"} <= names
    names.discard("PYTHONUNBUFFERED")  # the one non-qc variable (the image's)
    assert [n for n in sorted(names) if not _settings_env(n)] == []
    secret = _one("Secret", "qc-secrets")["stringData"]
    config = _one("ConfigMap", "qc-config")["data"]
    # what is secret lives only in the Secret
    assert {"QC_DATABASE_URL", "QC_REDIS_URL", "QC_SECRET_KEY"} <= set(secret)
    assert not {"QC_DATABASE_URL", "QC_REDIS_URL", "QC_SECRET_KEY"} & set(config)


def test_the_api_runs_no_loops_and_the_worker_runs_them_without_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.app import create_app

    def env(deployment: str) -> dict[str, str]:
        return {e["name"]: e["value"] for e in _container(deployment)["env"]}

    assert env("qc-api") == {"QC_BACKGROUND_LOOPS": "false"}  # the API: serve_api default
    assert env("qc-worker") == {"QC_BACKGROUND_LOOPS": "true", "QC_SERVE_API": "false"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert compose["api"]["environment"]["QC_BACKGROUND_LOOPS"] == "false"
    assert "QC_SERVE_API" not in compose["api"]["environment"]
    assert compose["worker"]["environment"]["QC_BACKGROUND_LOOPS"] == "true"
    assert compose["worker"]["environment"]["QC_SERVE_API"] == "false"
    monkeypatch.setenv("QC_SERVE_API", "false")
    worker = set(create_app(Settings()).openapi()["paths"])
    assert worker == {"/healthz", "/metrics"}
    monkeypatch.delenv("QC_SERVE_API")
    api = set(create_app(Settings()).openapi()["paths"])
    assert "/v1/carts/{cart_id}/checkout" in api and worker < api
    monkeypatch.setenv("QC_BACKGROUND_LOOPS", "false")  # read from the environment
    assert Settings().background_loops is False


def test_the_dockerfile_is_slim_non_root_and_checks_healthz() -> None:
    parser = _dockerfile()
    assert parser.baseimage is not None and parser.baseimage.endswith("-slim")
    (user,) = _final_stage("USER")
    assert user.split(":")[0] not in {"root", "0"}
    (expose,) = _final_stage("EXPOSE")
    assert expose == str(PORT)
    (healthcheck,) = _final_stage("HEALTHCHECK")
    assert f"http://127.0.0.1:{PORT}/healthz" in healthcheck
    (entrypoint,) = _final_stage("ENTRYPOINT")
    (cmd,) = _final_stage("CMD")
    argv = json.loads(entrypoint) + json.loads(cmd)
    assert argv == ["qc", "serve", "--host", "0.0.0.0", "--port", str(PORT)]


def test_the_image_runs_a_real_qc_serve() -> None:
    """The entrypoint is the ``qc`` script of pyproject, and ``serve`` takes the flags the
    image and the manifests pass."""
    import tomllib

    import typer.main

    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["qc"] == "qc.cli:app"
    command = typer.main.get_command(qc_cli)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    options = {opt for p in serve.params for opt in p.opts}
    assert {"--host", "--port"} <= options
    # every package the wheel ships is copied into the build stage
    wheel = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["tool"]["hatch"]
    packages = set(wheel["build"]["targets"]["wheel"]["packages"])
    copied = {v.split()[0] for v in _dockerfile_copies()}
    assert packages <= copied


def _dockerfile_copies() -> list[str]:
    return [i["value"] for i in _dockerfile().structure if i["instruction"] == "COPY"]


def test_compose_runs_the_image_command_on_postgres_and_valkey() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert set(compose) == {"postgres", "valkey", "api", "worker", "waiting-room"}
    (cmd,) = _final_stage("CMD")
    serve, *flags = json.loads(cmd)
    for service in ("api", "worker", "waiting-room"):
        wanted = [serve, "--waiting-room", *flags] if service == "waiting-room" else [serve, *flags]
        assert compose[service]["command"] == wanted, service
        env = compose[service]["environment"]
        assert (
            env["QC_DATABASE_URL"].startswith("postgresql://")
            and "@postgres:" in env["QC_DATABASE_URL"]
        )
        assert env["QC_REDIS_URL"].startswith("redis://valkey:")
    assert compose["api"]["ports"] == [f"{PORT}:{PORT}"]
    assert compose["api"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_the_waiting_room_runs_apart_and_the_api_sends_the_crowd_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flash sales' waiting room is a service of its own (``qc serve --waiting-room``:
    the line's routes and socket, no API, no loops), probed and stopped as the API, and
    the API's sale view names its address (QC_WAITING_ROOM_URL) without running a room of
    its own (no QC_WAITING_ROOM_PORT)."""
    import typer.main

    from server.app import create_app

    resources = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == on_disk and "waiting-room.yaml" in on_disk  # all applied
    serve = typer.main.get_command(qc_cli).commands["serve"]  # type: ignore[attr-defined]
    assert "--waiting-room" in {opt for p in serve.params for opt in p.opts}
    room_app = set(create_app(Settings(), waiting_room=True).openapi()["paths"])
    assert room_app == {
        "/healthz",  # the probes'
        "/metrics",
        "/v1/flash-sales/{sale_id}/queue",
        "/v1/flash-sales/{sale_id}/queue/me",
    }

    deployment = _one("Deployment", "qc-waiting-room")
    pod, room = deployment["spec"]["template"]["spec"], _container("qc-waiting-room")
    args = ["serve", "--waiting-room", "--host", "0.0.0.0", "--port", str(PORT)]
    assert room["args"] == args
    assert room["image"] == _container("qc-api")["image"]
    assert room["ports"] == [{"name": "http", "containerPort": PORT}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert room[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    pre_stop = room["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + GRACEFUL_S + 5
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["replicas"] >= 2  # a pod lost or drained leaves the line served
    room_env = {e["name"]: e["value"] for e in room["env"]}
    assert room_env == {"QC_BACKGROUND_LOOPS": "false"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    api_labels = _one("Deployment", "qc-api")["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _one("Service", "qc-waiting-room")["spec"]
    assert service["ports"][0]["targetPort"] == "http"
    # each Service reaches its own pods only: no join lands on an API pod, no checkout here
    assert service["selector"].items() <= labels.items()
    assert not service["selector"].items() <= api_labels.items()
    assert not _one("Service", "qc-api")["spec"]["selector"].items() <= labels.items()
    pdb = _one("PodDisruptionBudget", "qc-waiting-room")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items() and pdb["minAvailable"] >= 1

    # the API's sale view names the room: QC_WAITING_ROOM_URL reaches the API's pods
    # (the ConfigMap through envFrom), and no API pod runs a room of its own
    config = _one("ConfigMap", "qc-config")["data"]
    api_env = {e["name"]: e["value"] for e in _container("qc-api")["env"]}
    url = api_env.get("QC_WAITING_ROOM_URL", config.get("QC_WAITING_ROOM_URL", ""))
    assert url.startswith(("https://", "http://")), url
    assert {"configMapRef": {"name": "qc-config"}} in _container("qc-api")["envFrom"]
    assert "QC_WAITING_ROOM_PORT" not in api_env | config
    monkeypatch.setenv("QC_WAITING_ROOM_URL", url)
    assert Settings().waiting_room_url == url  # what the sale's public view reads

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    (published,) = compose["waiting-room"]["ports"]
    host_port, container_port = published.split(":")
    assert int(container_port) == PORT
    assert compose["api"]["environment"]["QC_WAITING_ROOM_URL"] == f"http://localhost:{host_port}"
    assert "QC_WAITING_ROOM_PORT" not in compose["api"]["environment"]
    assert compose["waiting-room"]["environment"]["QC_BACKGROUND_LOOPS"] == "false"
    assert compose["waiting-room"]["depends_on"]["api"]["condition"] == "service_healthy"
