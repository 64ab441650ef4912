"""The deployment files in deploy/, validated for real and offline.

- Kubernetes (deploy/k8s/): every manifest against the Kubernetes JSON schemas that the
  ``kubernetes-validate`` package ships (generated from the Kubernetes OpenAPI; the "strict"
  variant, where an unknown or misspelt field is an error), for the oldest Kubernetes version we
  support and the newest the package knows. Nothing is fetched: the schemas are package data.
- kustomize: ``kubectl kustomize deploy/k8s`` (offline; skipped without kubectl) builds, and
  its output validates too, with the image override applied.
- Compose (deploy/compose.yaml): against the Compose Specification schema vendored in the
  ``check-jsonschema`` package (``--builtin-schema vendor.compose-spec``, no network).
- nginx (deploy/nginx/): the committed hubbub.conf is the template's rendering, ``nginx -t``
  accepts a rendering, and a real nginx with that rendering carries SSE, a send, keep-alive pings
  and a WebSocket to a real Hubbub (skipped without nginx, but never under CI=true).
- Dockerfile: parsed; its HEALTHCHECK command is run against a real Hubbub.
- And the points that make these files right for Hubbub, which no schema knows: probes on
  /healthz and /readyz, a grace period longer than preStop + HUBBUB_SHUTDOWN_TIMEOUT, a PDB that
  selects the Deployment's pods, non-root everywhere, unbuffered long-lived proxying, and every
  HUBBUB_* variable a real ``Settings`` field with a value ``Settings`` accepts.
"""

from __future__ import annotations

import asyncio
import copy
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
NGINX_DIR = DEPLOY / "nginx"
RENDER = NGINX_DIR / "render.py"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

# The oldest Kubernetes minor we claim to support, and the newest the schema package ships.
K8S_VERSIONS = ["1.28", kubernetes_validate.latest_version()]
# What compose.yaml uses for its nodes; hubbub.conf is the template rendered with these.
COMPOSE_NODES = ["hubbub-1", "hubbub-2"]
COMPOSE_RENDER_ARGS = ["--listen", "80", *(f"{n}:8000" for n in COMPOSE_NODES)]
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


def kustomization() -> dict[str, Any]:
    doc = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def k8s_files() -> list[str]:
    return [str(r) for r in kustomization()["resources"]]


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for name in k8s_files():
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return docs


def k8s_kind(kind: str) -> dict[str, Any]:
    [doc] = [d for d in k8s_docs() if d["kind"] == kind]
    return doc


def hubbub_container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = [
        c
        for c in dig(deployment, "spec", "template", "spec", "containers")
        if c["name"] == "hubbub"
    ]
    return container


def k8s_env() -> dict[str, str]:
    """The environment a pod gets: the ConfigMap's data and the Secret's values."""
    config = k8s_kind("ConfigMap")["data"]
    secret = k8s_kind("Secret")["stringData"]
    return {**config, **secret}


def test_kustomization_lists_every_manifest() -> None:
    listed = k8s_files()
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)
    kinds = {d["kind"] for d in k8s_docs()}
    assert kinds == {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"}
    # The `images` override names the image the Deployment uses.
    image = hubbub_container(k8s_kind("Deployment"))["image"].split(":")[0]
    assert [i["name"] for i in kustomization()["images"]] == [image]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", k8s_files())
def test_k8s_manifest_matches_kubernetes_schema(name: str, version: str) -> None:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert docs, f"{name} is empty"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name} ({doc['kind']}) vs Kubernetes {version}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(exc.message)


def test_kustomize_build_is_valid() -> None:
    """What `kubectl apply -k deploy/k8s` would send: built by kustomize itself (offline)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its built-in kustomize builds the kustomization)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in built) == sorted(d["kind"] for d in k8s_docs())
    for doc in built:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    [deployment] = [d for d in built if d["kind"] == "Deployment"]
    [override] = kustomization()["images"]
    assert hubbub_container(deployment)["image"] == f"{override['newName']}:{override['newTag']}"


def test_k8s_schema_validation_is_strict() -> None:
    """A misspelt field or a wrong type fails: the validation above is not a no-op."""
    deployment = k8s_kind("Deployment")
    misspelt = copy.deepcopy(deployment)
    container = hubbub_container(misspelt)
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(misspelt, K8S_VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSIONS[-1], strict=True)


def test_deployment_probes_and_ports() -> None:
    deployment = k8s_kind("Deployment")
    assert deployment["spec"]["replicas"] == 3
    container = hubbub_container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = k8s_env()
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
    # Config comes from the ConfigMap and the Secret, by name.
    refs = {
        (k, v["name"]) for ref in container["envFrom"] for k, v in ref.items() if k.endswith("Ref")
    }
    assert refs == {
        ("configMapRef", k8s_kind("ConfigMap")["metadata"]["name"]),
        ("secretRef", k8s_kind("Secret")["metadata"]["name"]),
    }


def prestop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep", command
    return float(command[1])


def test_termination_grace_covers_prestop_and_drain() -> None:
    deployment = k8s_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = hubbub_container(deployment)
    drain = float(k8s_env()["HUBBUB_SHUTDOWN_TIMEOUT"])
    sleep = prestop_seconds(container)
    assert 1 <= sleep <= 15, "a few seconds, for the endpoint removal to reach every node"
    # The grace period runs from the start of preStop; SIGTERM comes after it.
    assert pod["terminationGracePeriodSeconds"] > sleep + drain
    # Rolling updates never go below the desired count: clients always have a pod to go to.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_deployment_resources_and_security() -> None:
    deployment = k8s_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = hubbub_container(deployment)
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) >= {"cpu", "memory"}, kind
    uid = dockerfile().user_uid
    for ctx in (pod["securityContext"], container["securityContext"]):
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == uid != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs writable /tmp and data dir: emptyDirs (or a volume) mounted there.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    data_dir = k8s_env()["HUBBUB_DATA_DIR"]
    assert data_dir == "/data" == dockerfile().env["HUBBUB_DATA_DIR"]
    for path in ("/tmp", data_dir):
        assert path in mounts, path
        assert "emptyDir" in volumes[mounts[path]], path


def test_service_selects_the_pods_without_affinity() -> None:
    deployment = k8s_kind("Deployment")
    pod_labels = dig(deployment, *POD_LABELS_KEY)
    service = k8s_kind("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"].get("sessionAffinity", "None") == "None"
    selector = service["spec"]["selector"]
    assert selector and selector.items() <= pod_labels.items()
    port_names = {p["name"] for p in hubbub_container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_pdb_protects_the_deployment() -> None:
    deployment = k8s_kind("Deployment")
    pod_labels = dig(deployment, *POD_LABELS_KEY)
    pdb = k8s_kind("PodDisruptionBudget")
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= pod_labels.items()
    # Selects exactly the Deployment's pods (the same labels), not a wider set.
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    spec = pdb["spec"]
    replicas = deployment["spec"]["replicas"]
    if "minAvailable" in spec:
        assert 2 <= spec["minAvailable"] < replicas
    else:
        assert spec["maxUnavailable"] == 1


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


def test_k8s_env_is_valid_hubbub_config(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = check_settings(k8s_env(), monkeypatch)
    assert settings.database_url().startswith("postgresql+asyncpg://")
    assert settings.broker.startswith("redis://")
    assert settings.secret is not None
    assert settings.shutdown_timeout == 20
    # Placeholders are clearly marked, and nothing that looks like a real secret is committed.
    for key, value in k8s_kind("Secret")["stringData"].items():
        assert "REPLACE-ME" in value, key
    assert "PLACEHOLDER" in (K8S / "secret.yaml").read_text()


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


def test_compose_two_nodes_share_store_broker_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = compose()
    nodes = hubbub_nodes(doc)
    assert sorted(nodes) == COMPOSE_NODES
    envs = [svc["environment"] for svc in nodes.values()]
    assert envs[0] == envs[1], "both nodes must be configured alike"
    env = envs[0]
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
    for name, svc in nodes.items():
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert duration_seconds(svc["stop_grace_period"]) > settings.shutdown_timeout
        # Both nodes on one volume: uploaded files are visible through either node.
        assert svc["volumes"] == ["hubbub-data:/data"]


def test_compose_dependencies_wait_for_health() -> None:
    doc = compose()
    services = doc["services"]
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"].split(":")[1].startswith("15")
    assert redis["image"].split(":")[1].startswith("7")
    for svc in (postgres, redis):
        assert svc["healthcheck"]["test"], svc
    for name in COMPOSE_NODES:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}
        assert deps["redis"] == {"condition": "service_healthy"}
        assert deps["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["hubbub", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    nginx = services["nginx"]
    assert nginx["depends_on"] == {n: {"condition": "service_healthy"} for n in COMPOSE_NODES}
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


def test_nginx_conf_is_safe_for_streams() -> None:
    conf = parse_nginx((NGINX_DIR / "hubbub.conf").read_text())
    assert [d.name for d in conf.block or []] == ["upstream", "map", "server"]
    upstream = conf.one("upstream")
    # Both compose nodes, balanced by open connections, and no stickiness of any kind.
    assert [d.args[0] for d in upstream.all("server")] == [f"{n}:8000" for n in COMPOSE_NODES]
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
    assert re.search(r"pip install -c requirements\.lock \S*hubbub-\S*\.whl", run), run
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
