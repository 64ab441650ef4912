"""The deployment files in deploy/, validated for real and offline.

- Kubernetes (deploy/k8s/base and deploy/k8s/overlays/{dev,production}): each overlay rendered
  by ``kubectl kustomize`` (offline; skipped without kubectl, but never under CI=true), and every
  object it renders, as well as every base manifest, validated against the Kubernetes JSON
  schemas that the ``kubernetes-validate`` package ships (generated from the Kubernetes OpenAPI;
  the "strict" variant, where an unknown or misspelt field is an error), for the oldest
  Kubernetes version we support and the newest the package knows. The ServiceMonitor (a CRD the
  package has no schema for) against tests/integration/schemas/. Nothing is fetched.
- Compose (deploy/compose.yaml): against the Compose Specification schema vendored in the
  ``check-jsonschema`` package (``--builtin-schema vendor.compose-spec``, no network).
- nginx (deploy/nginx/): the committed hubbub.conf is the template's rendering, ``nginx -t``
  accepts a rendering, and a real nginx with that rendering carries SSE, a send, keep-alive pings
  and a WebSocket to a real Hubbub (skipped without nginx, but never under CI=true).
- Dockerfile: parsed; its HEALTHCHECK command is run against a real Hubbub.
- And the points that make these files right for Hubbub, which no schema knows: probes on
  /healthz and /readyz, a grace period longer than preStop + HUBBUB_SHUTDOWN_TIMEOUT, a PDB that
  selects the Deployment's pods, no Secret shipped, an HPA on the Deployment, a migration Job
  like the pods, a NetworkPolicy and a ServiceMonitor that select them, non-root everywhere,
  unbuffered long-lived proxying, one scaled compose service, and every HUBBUB_* variable a
  real ``Settings`` field with a value ``Settings`` accepts.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hubbub.config import Settings
from tests.support import Server, client, free_port, open_stream, send_body

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_BASE = K8S / "base"
K8S_OVERLAYS = K8S / "overlays"
OVERLAYS = ["dev", "production"]
OVERLAY_KINDS = {
    "dev": ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"],
    "production": [
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Job",
        "NetworkPolicy",
        "ServiceMonitor",
    ],
}
# The Secret the operator creates (docs/deployment.md); the manifests only refer to it.
SECRET_NAME = "hubbub-secrets"
# The components applied before the Deployment rolls (docs/deployment.md, step 2).
PRE_ROLLOUT = {"config", "migration"}
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
SERVICEMONITOR_SCHEMA = (
    Path(__file__).parent / "schemas" / "servicemonitor-monitoring.coreos.com-v1.json"
)
NGINX_DIR = DEPLOY / "nginx"
RENDER = NGINX_DIR / "render.py"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

# The oldest Kubernetes minor we claim to support, and the newest the schema package ships.
K8S_VERSIONS = ["1.28", kubernetes_validate.latest_version()]
# What compose.yaml uses for its nodes; hubbub.conf is the template rendered with these.
# One service, scaled; nginx finds its replicas through Docker's DNS (127.0.0.11) by its name.
COMPOSE_SERVICE = "hubbub"
DOCKER_DNS = "127.0.0.11"
COMPOSE_RENDER_ARGS = ["--listen", "80", "--resolver", DOCKER_DNS, f"{COMPOSE_SERVICE}:8000"]
# Environment variables in the files that are not HUBBUB_* settings, and whose they are.
FOREIGN_ENV = {"FORWARDED_ALLOW_IPS"}  # uvicorn's: which proxies' X-Forwarded-* to trust

POD_LABELS_KEY = ("spec", "template", "metadata", "labels")


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def dig(obj: Any, *path: str | int) -> Any:
    for key in path:
        obj = obj[key]
    return obj


# Kubernetes ---------------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization(directory: Path) -> dict[str, Any]:
    doc = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def base_files() -> list[str]:
    return [str(r) for r in kustomization(K8S_BASE)["resources"]]


def kubectl_binary() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        reason = "kubectl is not installed (its built-in kustomize renders the overlays)"
        if in_ci():
            pytest.fail(f"{reason}: under CI=true the overlays must be rendered")
        pytest.skip(reason)
    return kubectl


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`: what `kubectl apply -k DIR` would send (offline)."""
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@functools.cache
def _rendered(overlay: str) -> str:
    return json.dumps(kustomize(K8S_OVERLAYS / overlay))


def rendered(overlay: str) -> list[dict[str, Any]]:
    docs = json.loads(_rendered(overlay))
    assert isinstance(docs, list)
    return docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def hubbub_container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = [
        c for c in dig(workload, "spec", "template", "spec", "containers") if c["name"] == "hubbub"
    ]
    return container


def documented_secret() -> dict[str, str]:
    """The keys and example values of the `kubectl create secret generic hubbub-secrets`
    command in docs/deployment.md: the Secret the operator creates (none is shipped)."""
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(r"kubectl create secret generic (\S+)((?:[^\n]*\\\n)*[^\n]*)", text)
    assert match, "docs/deployment.md shows no `kubectl create secret generic` command"
    assert match.group(1) == SECRET_NAME
    out: dict[str, str] = {}
    for word in shlex.split(match.group(2).replace("\\\n", " ")):
        if word.startswith("--from-literal="):
            key, _, value = word.removeprefix("--from-literal=").partition("=")
            # "$(python3 -c 'import secrets; ...')": what the shell would produce.
            out[key] = "generated-" + "x" * 48 if value.startswith("$(") else value
    assert out, "the command sets no --from-literal"
    return out


def pod_env(overlay: str) -> dict[str, str]:
    """The environment a pod of OVERLAY gets: its ConfigMap's data, then the operator's Secret
    (as documented) unless the overlay marks it optional."""
    docs = rendered(overlay)
    env = dict(one(docs, "ConfigMap")["data"])
    for ref in hubbub_container(one(docs, "Deployment"))["envFrom"]:
        if "secretRef" in ref and not ref["secretRef"].get("optional", False):
            env.update(documented_secret())
    return env


def validate_k8s(doc: dict[str, Any], version: str) -> None:
    if doc["kind"] == "ServiceMonitor":
        # A CRD: kubernetes-validate only knows the built-in kinds (see the test below).
        errors = sorted(servicemonitor_validator().iter_errors(doc), key=str)
        assert not errors, f"ServiceMonitor: {errors[0].json_path}: {errors[0].message}"
        return
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']} vs {version}: {where}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(exc.message)


@functools.cache
def servicemonitor_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SERVICEMONITOR_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_base_lists_every_manifest_and_ships_no_secret() -> None:
    listed = base_files()
    on_disk = sorted(p.name for p in K8S_BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    kinds = sorted(d["kind"] for name in listed for d in yaml_docs(K8S_BASE / name))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    # No Secret (and no placeholder one) anywhere under deploy/k8s: the operator creates it.
    for path in K8S.rglob("*.yaml"):
        for doc in yaml_docs(path):
            assert doc.get("kind") != "Secret", path
    assert not list(K8S.glob("*.yaml")), "manifests live in base/ and overlays/"
    # The `images` override names the image the Deployment uses.
    [deployment] = yaml_docs(K8S_BASE / "deployment.yaml")
    image = hubbub_container(deployment)["image"].split(":")[0]
    assert [i["name"] for i in kustomization(K8S_BASE)["images"]] == [image]


def test_overlays_use_every_file_they_hold() -> None:
    assert sorted(p.name for p in K8S_OVERLAYS.iterdir()) == OVERLAYS
    for overlay in OVERLAYS:
        directory = K8S_OVERLAYS / overlay
        k = kustomization(directory)
        assert "../../base" in k["resources"], overlay
        used = {r for r in k["resources"] if not r.startswith("..")}
        used |= {p["path"] for p in k.get("patches", []) if "path" in p}
        on_disk = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert used == on_disk, overlay


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", base_files())
def test_k8s_base_manifest_matches_kubernetes_schema(name: str, version: str) -> None:
    docs = yaml_docs(K8S_BASE / name)
    assert docs, f"{name} is empty"
    for doc in docs:
        validate_k8s(doc, version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_is_valid(overlay: str, version: str) -> None:
    docs = rendered(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(OVERLAY_KINDS[overlay]), overlay
    assert "Secret" not in kinds, "the Secret is the operator's, never rendered"
    for doc in docs:
        validate_k8s(doc, version)
    # The image override applies to every Hubbub container (the Job's too).
    k = kustomization(K8S_OVERLAYS / overlay)
    [override] = k.get("images") or kustomization(K8S_BASE)["images"]
    image = f"{override['newName']}:{override['newTag']}"
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert workloads
    for doc in workloads:
        assert hubbub_container(doc)["image"] == image, doc["metadata"]["name"]


def test_k8s_schema_validation_is_strict() -> None:
    """A misspelt field or a wrong type fails: the validation above is not a no-op."""
    [deployment] = yaml_docs(K8S_BASE / "deployment.yaml")
    misspelt = copy.deepcopy(deployment)
    container = hubbub_container(misspelt)
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(misspelt, K8S_VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSIONS[-1], strict=True)


def test_servicemonitor_schema_is_ours_and_strict() -> None:
    """kubernetes-validate has no schema for the Prometheus Operator's CRD, so the
    ServiceMonitor is checked against tests/integration/schemas/ (written from the CRD)."""
    monitor = one(rendered("production"), "ServiceMonitor")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, K8S_VERSIONS[-1], strict=True)
    validator = servicemonitor_validator()
    assert validator.is_valid(monitor)
    misspelt = copy.deepcopy(monitor)
    misspelt["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    assert not validator.is_valid(misspelt)
    bad_duration = copy.deepcopy(monitor)
    bad_duration["spec"]["endpoints"][0]["interval"] = "30 seconds"
    assert not validator.is_valid(bad_duration)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_probes_and_ports(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment")
    container = hubbub_container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = pod_env(overlay)
    assert ports == {"http": int(env.get("HUBBUB_PORT", "8000"))}
    assert ports["http"] == dockerfile().expose

    def probe(kind: str) -> dict[str, Any]:
        get = container[kind]["httpGet"]
        assert get["port"] in (*ports, *ports.values())
        return dict(get)

    assert probe("readinessProbe")["path"] == "/readyz"
    assert probe("livenessProbe")["path"] == "/healthz"
    assert probe("startupProbe")["path"] == "/healthz"
    # readyz waits up to 3 s for the store and the broker: the probe must wait longer.
    assert container["readinessProbe"]["timeoutSeconds"] > 3
    # Config comes from the ConfigMap and from the operator's Secret, by name.
    refs = {
        (k, v["name"]) for ref in container["envFrom"] for k, v in ref.items() if k.endswith("Ref")
    }
    assert refs == {
        ("configMapRef", one(docs, "ConfigMap")["metadata"]["name"]),
        ("secretRef", SECRET_NAME),
    }


def prestop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep", command
    return float(command[1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_prestop_and_drain(overlay: str) -> None:
    deployment = one(rendered(overlay), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = hubbub_container(deployment)
    drain = float(pod_env(overlay)["HUBBUB_SHUTDOWN_TIMEOUT"])
    sleep = prestop_seconds(container)
    assert 1 <= sleep <= 15, "a few seconds, for the endpoint removal to reach every node"
    # The grace period runs from the start of preStop; SIGTERM comes after it.
    assert pod["terminationGracePeriodSeconds"] > sleep + drain
    strategy = deployment["spec"]["strategy"]
    if overlay == "dev":
        # One pod with its own SQLite: never two at once.
        assert strategy == {"type": "Recreate"}
    else:
        # Rolling updates never go below the desired count: clients always have a pod to go to.
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def check_pod_security(pod: dict[str, Any], container: dict[str, Any]) -> None:
    uid = dockerfile().user_uid
    for ctx in (pod["securityContext"], container["securityContext"]):
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == uid != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) >= {"cpu", "memory"}, kind
    # A read-only root needs a writable /tmp and data dir: emptyDirs, never a shared volume
    # (files are in PostgreSQL or S3, not on a ReadWriteMany disk).
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    data_dir = dockerfile().env["HUBBUB_DATA_DIR"]
    for path in ("/tmp", data_dir):
        assert path in mounts, path
        assert "emptyDir" in volumes[mounts[path]], path
    assert all("persistentVolumeClaim" not in v for v in volumes.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_resources_and_security(overlay: str) -> None:
    deployment = one(rendered(overlay), "Deployment")
    assert pod_env(overlay)["HUBBUB_DATA_DIR"] == dockerfile().env["HUBBUB_DATA_DIR"] == "/data"
    check_pod_security(deployment["spec"]["template"]["spec"], hubbub_container(deployment))
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    pod_labels = dig(deployment, *POD_LABELS_KEY)
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    keys = {c["topologyKey"] for c in spread}
    assert "kubernetes.io/hostname" in keys
    if overlay == "production":
        assert "topology.kubernetes.io/zone" in keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_selects_the_pods_without_affinity(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment")
    pod_labels = dig(deployment, *POD_LABELS_KEY)
    service = one(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"].get("sessionAffinity", "None") == "None"
    selector = service["spec"]["selector"]
    assert selector and selector.items() <= pod_labels.items()
    port_names = {p["name"] for p in hubbub_container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # The migration Job's pods are not behind the Service.
    for job in (d for d in docs if d["kind"] == "Job"):
        assert not selector.items() <= dig(job, *POD_LABELS_KEY).items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdb_protects_the_deployment(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment")
    pdb = one(docs, "PodDisruptionBudget")
    selector = pdb["spec"]["selector"]["matchLabels"]
    # Selects exactly the Deployment's pods (the same labels), not a wider set.
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}


def test_production_hpa_owns_the_replica_count() -> None:
    docs = rendered("production")
    deployment, hpa = one(docs, "Deployment"), one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    # No replicas in the Deployment: `kubectl apply` must not reset what the HPA chose.
    assert "replicas" not in deployment["spec"]
    spec = hpa["spec"]
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
    # The PDB still leaves a pod when the HPA is at its minimum.
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] < spec["minReplicas"]
    resources = {m["resource"]["name"] for m in spec["metrics"] if m["type"] == "Resource"}
    assert "cpu" in resources
    requests = hubbub_container(deployment)["resources"]["requests"]
    assert resources <= set(requests), "Utilization is relative to the request"
    # Scaling down closes streams: slowly, one pod at a time, after minutes of low load.
    down = spec["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policies"])


def test_production_migration_job_runs_hubbub_migrate_like_the_pods() -> None:
    docs = rendered("production")
    deployment, job = one(docs, "Deployment"), one(docs, "Job")
    server, migrate = hubbub_container(deployment), hubbub_container(job)
    assert migrate["command"] == ["hubbub", "migrate"]
    assert migrate["image"] == server["image"]
    assert migrate["envFrom"] == server["envFrom"]
    assert migrate.get("env") == server.get("env")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    check_pod_security(pod, migrate)
    assert pod["securityContext"] == deployment["spec"]["template"]["spec"]["securityContext"]
    # One Job per release: its name carries the image tag (Jobs are immutable).
    tag = server["image"].rsplit(":", 1)[1]
    assert job["metadata"]["name"] == f"hubbub-migrate-{tag}"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # Step 1 of a release, `kubectl apply -l 'app.kubernetes.io/component in
    # (config,migration)'`, applies the Job and what it needs (the ConfigMap), nothing else.
    component = "app.kubernetes.io/component"
    first = {d["kind"] for d in docs if d["metadata"]["labels"][component] in PRE_ROLLOUT}
    assert first == {"ConfigMap", "Job"}
    assert "component in (config,migration)" in DEPLOYMENT_DOC.read_text()


def test_migration_job_name_follows_the_image_tag(tmp_path: Path) -> None:
    """Releasing 0.2.0 (the overlay's `images` tag) renders a new Job, hubbub-migrate-0.2.0."""
    copied = tmp_path / "k8s"
    shutil.copytree(K8S, copied)
    k_path = copied / "overlays" / "production" / "kustomization.yaml"
    k = yaml.safe_load(k_path.read_text())
    k["images"] = [{"name": "hubbub", "newName": "registry.example/hubbub", "newTag": "0.2.0"}]
    k_path.write_text(yaml.safe_dump(k))
    docs = kustomize(copied / "overlays" / "production")
    job = one(docs, "Job")
    assert job["metadata"]["name"] == "hubbub-migrate-0.2.0"
    assert hubbub_container(job)["image"] == "registry.example/hubbub:0.2.0"
    assert hubbub_container(one(docs, "Deployment"))["image"] == "registry.example/hubbub:0.2.0"
    kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)


def test_production_networkpolicy_selects_the_pods_and_limits_traffic() -> None:
    docs = rendered("production")
    policy = one(docs, "NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for workload in (one(docs, "Deployment"), one(docs, "Job")):
        assert selector and selector.items() <= dig(workload, *POD_LABELS_KEY).items()
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    container = hubbub_container(one(docs, "Deployment"))
    http = {p["name"]: p["containerPort"] for p in container["ports"]}
    # In: only the HTTP port, only from named peers (the ingress controller, Prometheus).
    for rule in policy["spec"]["ingress"]:
        assert [p["port"] for p in rule["ports"]] in (["http"], [http["http"]])
        assert rule["from"], "no ingress from everywhere"
        for peer in rule["from"]:
            assert peer["namespaceSelector"]["matchLabels"] and peer["podSelector"]["matchLabels"]
    # Out: DNS (UDP and TCP), PostgreSQL, Redis, HTTPS; nothing else.
    allowed = {
        (p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]
    }
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 443)}
    # The documented Secret's URLs use those ports.
    env = documented_secret()
    for key, port in (("HUBBUB_DATABASE", 5432), ("HUBBUB_BROKER", 6379)):
        assert f":{port}/" in env[key], key


def test_production_servicemonitor_scrapes_the_services_metrics_port() -> None:
    docs = rendered("production")
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    # A ServiceMonitor selects Services by their labels.
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # /metrics with HUBBUB_METRICS_TOKEN set wants that Bearer token: the same Secret key.
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["name"] == SECRET_NAME
    assert credentials["key"] in documented_secret()
    assert credentials["key"].removeprefix("HUBBUB_").lower() in Settings.model_fields


def test_dev_overlay_is_one_pod_with_sqlite() -> None:
    docs = rendered("dev")
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    [secret_ref] = [
        r["secretRef"] for r in hubbub_container(deployment)["envFrom"] if "secretRef" in r
    ]
    assert secret_ref == {"name": SECRET_NAME, "optional": True}


def check_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every HUBBUB_* name is a Settings field, and Settings accepts every value."""
    fields = Settings.model_fields
    for key in env:
        if key in FOREIGN_ENV:
            continue
        assert key.startswith("HUBBUB_"), key
        assert key.removeprefix("HUBBUB_").lower() in fields, f"{key} is not a Hubbub setting"
    for key in list(os.environ):
        if key.startswith("HUBBUB_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_env_is_valid_hubbub_config(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = check_settings(pod_env(overlay), monkeypatch)
    assert settings.auth == "jwt"
    assert settings.shutdown_timeout == 20
    if overlay == "production":
        assert settings.database_url().startswith("postgresql+asyncpg://")
        assert settings.broker.startswith("redis://")
        assert settings.secret is not None and len(settings.secret) >= 32
        assert settings.metrics_token is not None
        assert settings.cookie_secure is True
    else:
        # SQLite in the data dir (an emptyDir), one process, a secret generated there.
        assert settings.database is None
        assert settings.database_url().startswith("sqlite:///")
        assert settings.broker == "memory://"
        assert settings.secret is None


# Compose ------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())  # resolves the `<<: *anchor` merges
    assert isinstance(doc, dict)
    return doc


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored Compose Specification schema (no network)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_matches_compose_spec() -> None:
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_validation_is_strict(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    for good, bad in [
        ("stop_grace_period:", "stop_grace_periodd:"),
        ("condition: service_healthy", "condition: service_healty"),
    ]:
        assert good in text
        broken = tmp_path / "compose.yaml"
        broken.write_text(text.replace(good, bad))
        result = check_compose_schema(broken)
        assert result.returncode != 0, f"{bad!r} was accepted"


INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def interpolate(value: str, variables: dict[str, str]) -> str:
    return INTERPOLATION.sub(lambda m: variables[m.group(1)], value)


def duration_seconds(value: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, value
    return sum(float(n) * units[u] for n, u in parts)


def hubbub_nodes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in doc["services"].items()
        if svc.get("command") is None and str(svc.get("image", "")).startswith("hubbub")
    }


def test_compose_one_scaled_service_shares_store_broker_and_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = compose()
    # One service run as several replicas, not copy-pasted nodes.
    nodes = hubbub_nodes(doc)
    assert list(nodes) == [COMPOSE_SERVICE]
    svc = nodes[COMPOSE_SERVICE]
    assert svc["deploy"]["replicas"] >= 2
    # Nothing that would clash between replicas (or make them reachable around nginx).
    for key in ("hostname", "container_name", "ports"):
        assert key not in svc, key
    env = svc["environment"]
    # The migrate step runs with exactly the replicas' settings.
    assert doc["services"]["migrate"]["environment"] == env
    assert env["HUBBUB_DATABASE"].startswith("postgresql://")
    assert env["HUBBUB_BROKER"] == "redis://redis:6379/0"
    # One secret, from the environment / deploy/.env, never written in the file.
    secret_ref = INTERPOLATION.fullmatch(env["HUBBUB_SECRET"])
    assert secret_ref is not None and secret_ref.group(1) == "HUBBUB_SECRET"
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for var in INTERPOLATION.findall(COMPOSE.read_text()):
        assert var in example, f"${{{var}}} is not in deploy/.env.example"
    # No usable secret or password ships: they are empty in the example and required (`:?`).
    for var in ("HUBBUB_SECRET", "POSTGRES_PASSWORD"):
        assert example[var] == "", var
        assert re.search(r"\$\{" + var + r":\?", COMPOSE.read_text()), var
    filled = {k: v or "filled-in-0123456789abcdef-0123456789" for k, v in example.items()}
    settings = check_settings({k: interpolate(str(v), filled) for k, v in env.items()}, monkeypatch)
    assert settings.database_url().startswith("postgresql+asyncpg://")
    assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert duration_seconds(svc["stop_grace_period"]) > settings.shutdown_timeout
    # No shared volume: files are in PostgreSQL (or S3), /data is per-replica scratch.
    assert "volumes" not in svc
    assert set(doc.get("volumes", {})) == {"postgres-data"}


def test_compose_dependencies_wait_for_health() -> None:
    doc = compose()
    services = doc["services"]
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"].split(":")[1].startswith("15")
    assert redis["image"].split(":")[1].startswith("7")
    for svc in (postgres, redis):
        assert svc["healthcheck"]["test"], svc
    for name in [COMPOSE_SERVICE]:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}
        assert deps["redis"] == {"condition": "service_healthy"}
        assert deps["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["hubbub", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    nginx = services["nginx"]
    assert nginx["depends_on"] == {COMPOSE_SERVICE: {"condition": "service_healthy"}}
    # `server … resolve` in an upstream (re-resolving the service name) needs nginx >= 1.27.3.
    version = tuple(int(x) for x in nginx["image"].split(":")[1].split("-")[0].split("."))
    assert version >= (1, 28) or version >= (1, 27, 3), nginx["image"]
    # Only nginx is published.
    assert [name for name, svc in services.items() if "ports" in svc] == ["nginx"]
    [mount] = nginx["volumes"]
    source, target, *_ = mount.split(":")
    assert (DEPLOY / source).resolve() == NGINX_DIR / "hubbub.conf"
    assert target.startswith("/etc/nginx/conf.d/") and target.endswith(".conf")


# nginx --------------------------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        [d] = self.all(name)
        return d

    def value(self, name: str) -> str:
        return " ".join(self.one(name).args)


TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};"\']+')


def parse_nginx(text: str) -> Directive:
    """A small nginx config parser: directives, arguments and blocks (no includes)."""
    text = re.sub(r"(?m)#.*$", "", text)
    tokens = TOKEN.findall(text)
    pos = 0

    def block(closing: bool) -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        words: list[str] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == ";":
                out.append(Directive(words[0], words[1:]))
                words = []
            elif tok == "{":
                out.append(Directive(words[0], words[1:], block(True)))
                words = []
            elif tok == "}":
                assert closing and not words, "unbalanced }"
                return out
            else:
                words.append(tok)
        assert not closing and not words, "unterminated block or directive"
        return out

    return Directive("main", [], block(False))


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert m, value
    return int(m.group(1)) * units[m.group(2) or "s"]


def nginx_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert m, value
    return (
        int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[(m.group(2) or "").lower()]
    )


def render(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(RENDER), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_committed_conf_is_the_rendered_template() -> None:
    template = (NGINX_DIR / "hubbub.conf.template").read_text()
    assert "{{UPSTREAMS}}" in template
    assert "{{LISTEN}}" in template
    assert render(*COMPOSE_RENDER_ARGS) == (NGINX_DIR / "hubbub.conf").read_text(), (
        "deploy/nginx/hubbub.conf is stale: cd deploy/nginx && python3 render.py "
        + " ".join(COMPOSE_RENDER_ARGS)
        + " > hubbub.conf"
    )
    bad = subprocess.run(
        [sys.executable, str(RENDER), "--listen", "80", "not an address"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode != 0
    bad_resolver = subprocess.run(
        [sys.executable, str(RENDER), "--resolver", "not an address", "hubbub:8000"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad_resolver.returncode != 0


def test_nginx_conf_is_safe_for_streams() -> None:
    conf = parse_nginx((NGINX_DIR / "hubbub.conf").read_text())
    assert [d.name for d in conf.block or []] == ["upstream", "map", "server"]
    upstream = conf.one("upstream")
    # The compose service's name, looked up again every 10 s through Docker's DNS: it stands for
    # every replica (`--scale hubbub=N` needs no nginx change). Balanced by open connections,
    # no stickiness of any kind.
    [server_line] = upstream.all("server")
    assert server_line.args[0] == f"{COMPOSE_SERVICE}:8000"
    assert "resolve" in server_line.args
    assert upstream.value("zone").startswith("hubbub")  # `resolve` needs a shared zone
    resolver = upstream.one("resolver").args
    assert resolver[0] == DOCKER_DNS
    assert nginx_seconds(resolver[1].removeprefix("valid=")) <= 30
    assert upstream.all("least_conn")
    for sticky in ("ip_hash", "hash", "sticky"):
        assert not upstream.all(sticky), sticky

    server = conf.one("server")
    assert server.value("listen") == "80"
    [proxied] = {d.args[0].removeprefix("http://") for d in find_all(server, "proxy_pass")}
    assert proxied == upstream.args[0]
    assert server.value("proxy_http_version") == "1.1"
    assert server.value("proxy_buffering") == "off"
    assert server.value("proxy_cache") == "off"
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        assert nginx_seconds(server.value(timeout)) >= 3600, timeout
    # Larger than the biggest upload Hubbub accepts, so Hubbub's own 413 is what clients see.
    max_upload = Settings.model_fields["max_upload_bytes"].default
    assert nginx_bytes(server.value("client_max_body_size")) > max_upload
    # Nothing turns buffering back on in a location.
    for name in ("proxy_buffering", "proxy_cache", "proxy_request_buffering"):
        for d in find_all(server, name):
            assert d.args == ["off"], (name, d.args)

    locations = {" ".join(d.args): d for d in server.all("location")}
    assert set(locations) == {"/", "= /chat/ws"}

    def headers(loc: Directive) -> dict[str, str]:
        return {d.args[0].lower(): " ".join(d.args[1:]) for d in loc.all("proxy_set_header")}

    plain, ws = headers(locations["/"]), headers(locations["= /chat/ws"])
    # SSE, long-poll and the rest: HTTP/1.1 keep-alive to the node, no hop-by-hop Connection.
    assert plain["connection"] in ('""', "''")
    assert "upgrade" not in plain
    # WebSocket: the upgrade handshake is passed through.
    assert ws["upgrade"] == "$http_upgrade"
    mapping = conf.one("map")
    assert mapping.args == ["$http_upgrade", ws["connection"]]
    assert {d.name: d.args for d in mapping.block or []} == {
        "default": ["upgrade"],
        '""': ['""'],
    }
    # Hubbub compares a browser's Origin with Host on /chat/ws: forward Host with its port.
    for h in (plain, ws):
        assert h["host"] == "$http_host"
        assert h["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
        assert h["x-forwarded-proto"] == "$scheme"


def find_all(d: Directive, name: str) -> list[Directive]:
    found = [d] if d.name == name else []
    for child in d.block or []:
        found.extend(find_all(child, name))
    return found


def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and Path(candidate).exists():
            return candidate
    reason = "nginx is not installed (Debian: apt-get install nginx-light)"
    if in_ci():
        pytest.fail(f"{reason}: under CI=true the nginx tests must run")
    pytest.skip(reason)


@dataclass
class NginxPrefix:
    root: Path
    conf: Path
    error_log: Path
    args: list[str] = field(default_factory=list)


def nginx_prefix(tmp: Path, listen: str, upstreams: list[str]) -> NginxPrefix:
    """A throwaway nginx: our rendered server block inside a minimal nginx.conf."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "hubbub.conf").write_text(render("--listen", listen, *upstreams))
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp / "access.log"};
{temp_paths}
    include {tmp / "hubbub.conf"};
}}
"""
    )
    error_log = tmp / "error.log"
    return NginxPrefix(
        tmp, conf, error_log, ["-p", str(tmp), "-c", str(conf), "-e", str(error_log)]
    )


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    nginx = nginx_binary()
    prefix = nginx_prefix(
        tmp_path / "nginx", f"127.0.0.1:{free_port()}", [f"127.0.0.1:{free_port()}"] * 2
    )
    result = subprocess.run(
        [nginx, "-t", *prefix.args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    # And the compose rendering parses too (its upstream host names resolve only in compose,
    # so that one is checked by our parser, not by nginx -t).
    parse_nginx((NGINX_DIR / "hubbub.conf").read_text())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Hubbub with a 1 s ping, to see keep-alives cross the proxy quickly."""
    server = Server(
        tmp_path_factory.mktemp("deploy-node"),
        auth="trust",
        env={"HUBBUB_PING_INTERVAL": "1"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nginx_proxy(node: Server, tmp_path: Path) -> Iterator[str]:
    """Real nginx with the rendered config: upstreams = the live node and a dead one (a node
    that is down or draining), so every request also exercises the fail-over to the other."""
    nginx = nginx_binary()
    port, dead = free_port(), free_port()
    upstreams = [f"127.0.0.1:{dead}", f"127.0.0.1:{node.port}"]
    prefix = nginx_prefix(tmp_path / "nginx", f"127.0.0.1:{port}", upstreams)
    proc = subprocess.Popen(
        [nginx, *prefix.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nginx exited {proc.returncode}:\n{prefix.error_log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start:\n" + prefix.error_log.read_text())
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_sse_send_and_pings_through_real_nginx(nginx_proxy: str) -> None:
    async with client(nginx_proxy) as http:
        for _ in range(4):  # the dead upstream is skipped every time
            assert (await http.get("/healthz")).status_code == 200
        room = "deploy-sse"
        async with open_stream(http, f"/chat/room/{room}/events", params={"user_id": "bob"}) as s:
            assert s.status == 200
            assert s.headers is not None
            assert s.headers["content-type"].startswith("text/event-stream")
            assert "content-length" not in s.headers
            r = await http.post(
                "/chat/messages", headers={"User-ID": "alice"}, json=send_body(room, "via nginx")
            )
            assert r.status_code == 201, r.text
            t0 = asyncio.get_running_loop().time()
            [msg] = await s.wait_messages(1, timeout=5)
            assert msg["text"] == "via nginx"
            # Unbuffered: the event arrives at once, not when a buffer fills or the stream ends.
            assert asyncio.get_running_loop().time() - t0 < 2
            # Keep-alive comments cross the proxy too (HUBBUB_PING_INTERVAL=1 here).
            pings = len(s.comments)
            await s.wait_for(lambda st: len(st.comments) >= pings + 2, timeout=6)
            assert not s.closed


async def test_websocket_upgrade_through_real_nginx(nginx_proxy: str) -> None:
    ws_url = "ws" + nginx_proxy.removeprefix("http") + "/chat/ws?user_id=carol"
    # A browser on the proxy's origin: Host reaches Hubbub with its port, so Origin matches.
    async with connect(ws_url, origin=nginx_proxy, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "room_id": "deploy-ws", "ref": "s"}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["event"] == "subscribed":
                break
        await ws.send(
            json.dumps({"op": "send", "room_id": "deploy-ws", "message": "ws hi", "ref": "m"})
        )
        seen: set[str] = set()
        while seen != {"ack", "message"}:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["event"] in ("ack", "message"):
                assert frame["data"]["text"] == "ws hi"
                seen.add(frame["event"])
    # Another site's page is still refused: the proxy does not defeat the Origin check.
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url, origin="http://evil.example", open_timeout=10):
            pass
    assert refused.value.response.status_code == 403


# Dockerfile ---------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    rest: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.rest)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self.rest
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in self.final.all("ENV"):
            for pair in shlex.split(i.rest):
                key, _, value = pair.partition("=")
                out[key] = value
        return out

    @property
    def user_uid(self) -> int:
        [user] = self.final.all("USER")
        uid = user.rest.split(":")[0]
        assert uid.isdigit(), "USER must be numeric for Kubernetes runAsNonRoot"
        return int(uid)

    @property
    def expose(self) -> int:
        [expose] = self.final.all("EXPOSE")
        return int(expose.rest.split("/")[0])

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        [hc] = self.final.all("HEALTHCHECK")
        options, _, command = hc.rest.partition("CMD ")
        opts = dict(o.removeprefix("--").split("=", 1) for o in options.split())
        return opts, json.loads(command)


def dockerfile() -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit between continuation lines too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return Dockerfile(args, stages)


def test_dockerfile_is_multi_stage_from_python_slim() -> None:
    df = dockerfile()
    assert len(df.stages) >= 2
    names = [s.name for s in df.stages]
    assert all(names), "every stage is named: FROM … AS …"
    for stage in df.stages:
        assert stage.base == "python:3.11-slim", stage.base
    builder = df.stages[0]
    run = " ".join(i.rest for i in builder.all("RUN"))
    assert "pip wheel" in run
    # Every dependency at its locked version and hash, then the wheel itself without resolving.
    assert re.search(r"pip install --require-hashes -r requirements/extras\.txt", run), run
    assert re.search(r"pip install --no-deps \S*hubbub-\S*\.whl", run), run
    # The builder copies only what the wheel needs; .dockerignore does not hide any of it.
    ignored = dockerignore()
    for copy_ in builder.all("COPY"):
        *sources, _dest = copy_.rest.split()
        for src in sources:
            assert (ROOT / src).exists(), src
            assert src.rstrip("/") not in ignored, src
    # The final stage takes only the virtualenv from the builder.
    copies = df.final.all("COPY")
    assert copies
    for copy_ in copies:
        assert copy_.rest.startswith(f"--from={builder.name} "), copy_.rest
        assert copy_.rest.split()[1:] == ["/opt/hubbub", "/opt/hubbub"]
    assert df.env["PATH"].startswith("/opt/hubbub/bin:")


def test_dockerfile_runtime_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    df = dockerfile()
    assert df.user_uid != 0
    assert df.expose == 8000
    [stop] = df.final.all("STOPSIGNAL")
    assert stop.rest == "SIGTERM"
    [cmd] = df.final.all("CMD")
    assert cmd.exec_form() == ["hubbub", "serve", "--host", "0.0.0.0"]
    assert df.env["HUBBUB_DATA_DIR"] == "/data"
    [volume] = df.final.all("VOLUME")
    assert "/data" in json.loads(volume.rest)
    # USER comes after the last RUN (nothing after it runs as root) and owns the data dir.
    keywords = [i.keyword for i in df.final.instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert f"chown {df.user_uid}:" in " ".join(i.rest for i in df.final.all("RUN"))
    hubbub_env = {k: v for k, v in df.env.items() if k.startswith("HUBBUB_")}
    settings = check_settings(hubbub_env, monkeypatch)
    assert settings.port == df.expose


def test_dockerfile_healthcheck_hits_healthz(node: Server) -> None:
    opts, command = dockerfile().healthcheck()
    assert command[0] == "python"
    assert "/healthz" in " ".join(command)
    assert "curl" not in " ".join(command) and "wget" not in " ".join(command)
    assert duration_seconds(opts["timeout"]) < duration_seconds(opts["interval"])
    # Run it as Docker would (the image's python is the venv's), against a live Hubbub ...
    env = {**os.environ, "HUBBUB_PORT": str(node.port)}
    argv = [sys.executable, *command[1:]]
    ok = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    # ... and against a port where nothing listens: unhealthy.
    env["HUBBUB_PORT"] = str(free_port())
    bad = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
    assert bad.returncode != 0


def dockerignore() -> set[str]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        return set()
    return {
        line.strip().rstrip("/")
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def test_dockerignore_keeps_secrets_and_venv_out_of_the_context() -> None:
    ignored = dockerignore()
    assert {".venv", ".git", "hubbub-data", "deploy/.env", "**/*.egg-info"} <= ignored


def test_healthz_and_readyz_answer(node: Server) -> None:
    """The paths the probes and the HEALTHCHECK use exist and answer 200 on a ready node."""
    for path in ("/healthz", "/readyz"):
        r = httpx.get(node.url + path, timeout=5)
        assert r.status_code == 200, (path, r.text)
