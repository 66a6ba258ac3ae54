"""deploy/k8s/: the Kubernetes manifests, rendered with Kustomize and checked offline (no cluster needed).

The base and the production overlay are rendered with `kubectl kustomize` (kubectl carries Kustomize), every
document is validated against the Kubernetes JSON schemas of one version in strict mode (the copies bundled by
the kubernetes-validate package; an unknown field fails), and then against this project's rules: replicas,
probes, resources, a restricted security context on every container, a migration Job per release and service
with init containers that wait for it, ClusterIP Services, one Ingress to the gateway only, NetworkPolicies,
autoscalers, disruption budgets, no secret written anywhere, and environment variables that the components'
own Settings classes read and accept in production mode.

The overlay reads its secrets from secrets.env, which is never committed (a checkout cannot deploy placeholder
secrets): the tests render a copy of deploy/k8s holding a secrets.env made of test values. Each rule is a
function returning its problems, so the same rules are shown to reject broken manifests.
"""

from __future__ import annotations

import base64
import copy
import http.server
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.test_compose import image_stage

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = Path("base")
PRODUCTION = Path("overlays") / "production"
SECRETS_EXAMPLE = K8S / PRODUCTION / "secrets.env.example"
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"

KUBERNETES_VERSION = "1.32"  # the schemas the manifests are checked against (the kubectl on these machines)
KUBERNETES_VALIDATE = "1.37.0"
NAMESPACE = "crowdfund"
SERVICES = ("campaigns", "pledges", "refunds")
COMPONENTS = (*SERVICES, "gateway")
AUTOSCALED = ("gateway", "pledges")
UID = 10001  # the user of deploy/Dockerfile
PORT = 8000
PLACEHOLDER = "REPLACE_ME"
# Environment variables whose value is secret: only ever from a Secret.
SECRET_ENV = re.compile(r"(SECRET|KEY|PASSWORD|TOKEN|DATABASE_URL|STORAGE_URI)$")
# Read by uvicorn (the images' command), not by a Settings class.
UVICORN_ENV = {"FORWARDED_ALLOW_IPS"}
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]*:([^/\s@]+)@")
SECRET_LOOKING = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{8,}|\bwhsec_[A-Za-z0-9]{8,}")


# ---- rendering ------------------------------------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which("kubectl") or "/usr/bin/kubectl"
    if not Path(path).is_file():
        pytest.fail(
            "kubectl is not installed: these tests render deploy/k8s with `kubectl kustomize` (kubectl 1.27 or "
            "newer carries Kustomize v5; these machines have it at /usr/bin/kubectl from the machine image)"
        )
    return path


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)


def render(directory: Path) -> list[dict[str, Any]]:
    result = kustomize(directory)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    documents = [document for document in yaml.safe_load_all(result.stdout) if document is not None]
    assert documents, f"kubectl kustomize {directory} rendered nothing"
    return documents


def example_secrets() -> dict[str, str]:
    """KEY=VALUE lines of secrets.env.example."""
    pairs = {}
    for line in SECRETS_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, separator, value = line.partition("=")
            assert separator, f"not KEY=VALUE: {line!r}"
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"not KEY=VALUE: {line!r}"
            pairs[key] = value
    return pairs


def secret_test_values() -> dict[str, str]:
    """secrets.env.example with each placeholder replaced by a distinct test value."""
    return {
        key: value.replace(PLACEHOLDER, f"test-{key.lower().replace('_', '-')}-0123456789abcdef0123456789abcdef")
        for key, value in example_secrets().items()
    }


def copy_of_deploy_k8s(destination: Path, *, with_secrets: bool) -> Path:
    """deploy/k8s without any real secrets.env; with_secrets: the overlay gets one of test values."""
    target = destination / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("secrets.env"))
    if with_secrets:
        lines = [f"{key}={value}" for key, value in secret_test_values().items()]
        (target / PRODUCTION / "secrets.env").write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of_deploy_k8s(tmp_path_factory.mktemp("deploy"), with_secrets=True)


@pytest.fixture(scope="module")
def base(workdir: Path) -> list[dict[str, Any]]:
    return render(workdir / BASE)


@pytest.fixture(scope="module")
def production(workdir: Path) -> list[dict[str, Any]]:
    return render(workdir / PRODUCTION)


def overlay_kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / PRODUCTION / "kustomization.yaml").read_text())


def release_tag() -> str:
    tags = {image["newTag"] for image in overlay_kustomization()["images"]}
    assert len(tags) == 1, f"the four images come from one commit: one tag, not {tags}"
    return str(tags.pop())


# ---- looking things up in a rendered stream ---------------------------------------------------------------------


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == kind]


def named(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [document for document in of_kind(documents, kind) if document["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def ident(document: Mapping[str, Any]) -> str:
    return f"{document['kind']}/{document['metadata']['name']}"


def workloads(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] in ("Deployment", "Job")]


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def all_containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    name = deployment["metadata"]["name"]
    containers = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    assert len(containers) == 1, f"{ident(deployment)}: one container named {name}"
    return containers[0]


def migration_job(documents: list[dict[str, Any]], service: str) -> dict[str, Any]:
    jobs = [
        job
        for job in of_kind(documents, "Job")
        if pod_labels(job).get("app.kubernetes.io/name") == service
        and pod_labels(job).get("app.kubernetes.io/component") == "migration"
    ]
    assert len(jobs) == 1, f"one migration Job for {service}, found {[ident(j) for j in jobs]}"
    return jobs[0]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector ({} matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def named_ports(workload: Mapping[str, Any]) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for container in pod_spec(workload)["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }


def container_port(workload: Mapping[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    return named_ports(workload).get(port)


def decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def environment(container: Mapping[str, Any], documents: list[dict[str, Any]]) -> dict[str, str]:
    """What the container's process sees: envFrom, then env, with ConfigMap and Secret references resolved."""
    resolved: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = named(documents, "ConfigMap", source["configMapRef"]["name"]).get("data") or {}
        else:
            data = decoded(named(documents, "Secret", source["secretRef"]["name"]))
        resolved.update({source.get("prefix", "") + key: value for key, value in data.items()})
    for variable in container.get("env", []):
        if "value" in variable:
            resolved[variable["name"]] = variable["value"]
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            resolved[variable["name"]] = decoded(named(documents, "Secret", ref["name"]))[ref["key"]]
        elif "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            resolved[variable["name"]] = named(documents, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            raise AssertionError(f"{variable['name']}: unexpected source {reference}")
    return resolved


def environment_names(container: Mapping[str, Any], documents: list[dict[str, Any]]) -> set[str]:
    """The variables a container gets, without resolving Secrets (the base has none)."""
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets are mapped one by one (secretKeyRef), never a whole Secret"
        data = named(documents, "ConfigMap", source["configMapRef"]["name"]).get("data") or {}
        names |= {source.get("prefix", "") + key for key in data}
    return names


def component_of(workload: Mapping[str, Any]) -> str:
    return pod_labels(workload)["app.kubernetes.io/name"]


def settings_class(component: str) -> Any:
    module = "gateway.config" if component == "gateway" else f"services.{component}.config"
    return importlib.import_module(module).Settings


def settings_variables(component: str) -> set[str]:
    """The environment variables the component's Settings class reads: <PREFIX><FIELD>."""
    cls = settings_class(component)
    prefix = cls.model_config["env_prefix"]
    return {prefix + name.upper() for name in cls.model_fields}


def quantity(value: str | int | float) -> float:
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


# ---- the rules, each a function returning its problems --------------------------------------------------------


def schema_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Every document against the Kubernetes JSON schemas of KUBERNETES_VERSION, strict (unknown fields fail)."""
    import kubernetes_validate

    problems = []
    for document in documents:
        try:
            version = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(map(str, error.absolute_path)) or "<root>"
            problems.append(f"{ident(document)}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{ident(document)}: {error.message}")
        else:
            if version != KUBERNETES_VERSION:
                problems.append(f"{ident(document)}: validated against {version}, not {KUBERNETES_VERSION}")
    return problems


def security_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Non-root, read-only, no privileges, RuntimeDefault seccomp: every pod and every container, init too."""
    problems = []
    for workload in workloads(documents):
        spec = pod_spec(workload)
        pod = spec.get("securityContext") or {}
        where = ident(workload)
        if pod.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
        if pod.get("runAsUser") != UID or pod.get("runAsGroup") != UID:
            problems.append(f"{where}: the pod does not run as {UID}:{UID}")
        if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service account token (no process talks to the API server)")
        if spec.get("enableServiceLinks") is not False:
            problems.append(f"{where}: enableServiceLinks adds <SERVICE>_PORT... variables with the settings' prefixes")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{where}: {host}")
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in all_containers(workload):
            at = f"{where} container {container['name']}"
            context = container.get("securityContext") or {}
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{at}: runAsNonRoot is not true")
            if context.get("runAsUser", pod.get("runAsUser")) != UID:
                problems.append(f"{at}: does not run as uid {UID}")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem is not true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{at}: privileged")
            capabilities = context.get("capabilities") or {}
            if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
                problems.append(f"{at}: capabilities are not drop [ALL] with nothing added")
            seccomp = context.get("seccompProfile") or pod.get("seccompProfile") or {}
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{at}: seccompProfile is not RuntimeDefault")
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if mounts.get("/tmp") not in tmp_volumes:
                problems.append(f"{at}: no emptyDir at /tmp (the root filesystem is read-only)")
            for port in container.get("ports", []):
                if "hostPort" in port:
                    problems.append(f"{at}: hostPort")
    return problems


def resource_problems(documents: list[dict[str, Any]]) -> list[str]:
    problems = []
    for workload in workloads(documents):
        for container in all_containers(workload):
            at = f"{ident(workload)} container {container['name']}"
            resources = container.get("resources") or {}
            for resource in ("cpu", "memory"):
                request = (resources.get("requests") or {}).get(resource)
                limit = (resources.get("limits") or {}).get(resource)
                if request is None or limit is None:
                    problems.append(f"{at}: no {resource} request and limit")
                elif quantity(request) > quantity(limit):
                    problems.append(f"{at}: {resource} request {request} above its limit {limit}")
        if workload["kind"] == "Deployment":
            # One uvicorn process holds 100-200 MB: the limit leaves room above that.
            memory = (main_container(workload).get("resources") or {}).get("limits", {}).get("memory")
            if memory is not None and quantity(memory) < 256 * 2**20:
                problems.append(f"{ident(workload)}: memory limit {memory} below 256Mi")
    return problems


def gateway_probe_code(probe: Mapping[str, Any]) -> str:
    command = probe["exec"]["command"]
    assert command[:2] == ["python", "-c"], command
    return command[2]


def probe_problems(documents: list[dict[str, Any]]) -> list[str]:
    problems = []
    for deployment in of_kind(documents, "Deployment"):
        name = deployment["metadata"]["name"]
        container = main_container(deployment)
        where = ident(deployment)
        readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
        if not readiness or not liveness:
            problems.append(f"{where}: needs a readiness and a liveness probe")
            continue
        if name in SERVICES:
            # Ready when the database answers; alive when the process answers (a database outage must not
            # restart every pod).
            for kind, probe, path in (("readiness", readiness, "/readyz"), ("liveness", liveness, "/healthz")):
                get = probe.get("httpGet") or {}
                if get.get("path") != path:
                    problems.append(f"{where}: {kind} probe is not an httpGet of {path}")
                elif container_port(deployment, get.get("port")) != PORT:
                    problems.append(f"{where}: {kind} probe is not on port {PORT}")
        else:
            # /healthz answers 503 when a service is down: an httpGet probe counts that as a failure and would
            # take every gateway out (readiness) or restart them all (liveness).
            for kind, probe in (("readiness", readiness), ("liveness", liveness)):
                if "httpGet" in probe:
                    problems.append(f"{where}: {kind} httpGet would fail on the 503 of a degraded /healthz")
                    continue
                code = gateway_probe_code(probe)
                if "'/healthz'" not in code or "(200, 503)" not in code:
                    problems.append(f"{where}: {kind} probe does not accept 200 and 503 from /healthz")
                timeout = re.search(r"timeout=(\d+(?:\.\d+)?)", code)
                if not timeout or float(timeout.group(1)) >= probe.get("timeoutSeconds", 1):
                    problems.append(f"{where}: {kind} probe's timeoutSeconds must exceed its HTTP timeout")
                elif float(timeout.group(1)) <= 2:
                    problems.append(f"{where}: {kind} HTTP timeout must exceed /healthz's own 2 s wait")
    return problems


def replica_problems(documents: list[dict[str, Any]]) -> list[str]:
    """At least two pods of everything: a fixed count, or an autoscaler's minimum (and then no fixed count)."""
    problems = []
    autoscalers = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa
        for hpa in of_kind(documents, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    }
    for deployment in of_kind(documents, "Deployment"):
        name = deployment["metadata"]["name"]
        replicas = deployment["spec"].get("replicas")
        if name in autoscalers:
            if replicas is not None:
                problems.append(f"{ident(deployment)}: replicas {replicas} would reset its autoscaler on each apply")
            if autoscalers[name]["spec"].get("minReplicas", 1) < 2:
                problems.append(f"HorizontalPodAutoscaler/{name}: minReplicas below 2")
        elif (replicas or 1) < 2:
            problems.append(f"{ident(deployment)}: {replicas or 1} replica(s)")
        strategy = deployment["spec"].get("strategy") or {}
        if strategy.get("type") != "RollingUpdate" or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
            problems.append(f"{ident(deployment)}: a rollout must keep every old pod until a new one is ready")
    for name in AUTOSCALED:
        hpa = autoscalers.get(name)
        if hpa is None:
            problems.append(f"no HorizontalPodAutoscaler for {name}")
        elif hpa["apiVersion"] != "autoscaling/v2" or not hpa["spec"].get("metrics"):
            problems.append(f"HorizontalPodAutoscaler/{name}: autoscaling/v2 with metrics")
        elif hpa["spec"]["maxReplicas"] <= hpa["spec"]["minReplicas"]:
            problems.append(f"HorizontalPodAutoscaler/{name}: nothing to scale")
    for name in autoscalers:
        if name not in {d["metadata"]["name"] for d in of_kind(documents, "Deployment")}:
            problems.append(f"HorizontalPodAutoscaler targets a missing Deployment {name}")
    return problems


def secret_problems(documents: list[dict[str, Any]], allowed_values: set[str]) -> list[str]:
    """No secret in a manifest: secret variables come from Secrets, and Secrets hold only the given values."""
    problems = []
    for workload in workloads(documents):
        for container in all_containers(workload):
            for variable in container.get("env", []):
                name = variable["name"]
                if SECRET_ENV.search(name) and "secretKeyRef" not in (variable.get("valueFrom") or {}):
                    problems.append(f"{ident(workload)}: {name} is not from a Secret")
                value = variable.get("value", "")
                if CREDENTIALS_IN_URL.search(value) or SECRET_LOOKING.search(value):
                    problems.append(f"{ident(workload)}: {name} holds a credential")
    for config_map in of_kind(documents, "ConfigMap"):
        for key, value in (config_map.get("data") or {}).items():
            if SECRET_ENV.search(key) or CREDENTIALS_IN_URL.search(value) or SECRET_LOOKING.search(value):
                problems.append(f"{ident(config_map)}: {key} is secret; it belongs in secrets.env")
    for secret in of_kind(documents, "Secret"):
        for key, value in decoded(secret).items():
            if value not in allowed_values:
                problems.append(f"{ident(secret)}: {key} was not generated from secrets.env")
    return problems


def ingress_problems(documents: list[dict[str, Any]]) -> list[str]:
    """One Ingress; every path goes to the gateway Service; every Service is ClusterIP."""
    problems = []
    ingresses = of_kind(documents, "Ingress")
    if len(ingresses) != 1:
        problems.append(f"{len(ingresses)} Ingresses, not one")
    gateway_ports = {
        key
        for port in named(documents, "Service", "gateway")["spec"]["ports"]
        for key in (port.get("name"), port["port"])
    }
    for ingress in ingresses:
        spec = ingress["spec"]
        backends = [path["backend"] for rule in spec.get("rules", []) for path in rule["http"]["paths"]]
        if "defaultBackend" in spec:
            backends.append(spec["defaultBackend"])
        if not backends:
            problems.append(f"{ident(ingress)}: routes nothing")
        for backend in backends:
            service = backend.get("service") or {}
            port = service.get("port", {}).get("name") or service.get("port", {}).get("number")
            if service.get("name") != "gateway" or port not in gateway_ports:
                problems.append(f"{ident(ingress)}: routes to {backend}, not to the gateway Service")
        if not spec.get("tls"):
            problems.append(f"{ident(ingress)}: no TLS")
    for service in of_kind(documents, "Service"):
        if service["spec"].get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"{ident(service)}: {service['spec']['type']} is reachable from outside the cluster")
    return problems


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def ingress_allowed(policies: list[dict[str, Any]], source: Pod, destination: Pod, port: int) -> bool:
    """NetworkPolicy semantics for one TCP connection (ipBlock peers never match a pod here)."""
    selecting = [
        policy
        for policy in policies
        if policy["metadata"].get("namespace", NAMESPACE) == destination.namespace
        and selector_matches(policy["spec"]["podSelector"], destination.labels)
        and "Ingress" in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated
    for policy in selecting:
        namespace = policy["metadata"].get("namespace", NAMESPACE)
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports") or []
            if ports and not any(
                entry.get("protocol", "TCP") == "TCP"
                and (
                    entry.get("port") is None
                    or (destination.ports.get(entry["port"]) if isinstance(entry["port"], str) else entry["port"])
                    == port
                )
                for entry in ports
            ):
                continue
            peers = rule.get("from") or []
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    continue
                if "namespaceSelector" in peer:
                    in_namespace = selector_matches(peer["namespaceSelector"], source.namespace_labels)
                else:
                    in_namespace = source.namespace == namespace
                if in_namespace and selector_matches(peer.get("podSelector") or {}, source.labels):
                    return True
    return False


def cluster_pods(documents: list[dict[str, Any]]) -> dict[str, Pod]:
    """The pods of the rendered workloads, and some that must not get in."""
    pods = {}
    for workload in workloads(documents):
        kind = "migration" if workload["kind"] == "Job" else "pod"
        name = f"{component_of(workload)}-{kind}"
        namespace = workload["metadata"].get("namespace", NAMESPACE)
        pods[name] = Pod(name, namespace, pod_labels(workload), named_ports(workload))
    gateway_labels = pod_labels(named(documents, "Deployment", "gateway"))
    pods["stranger"] = Pod("stranger", NAMESPACE, {"app": "debug"})
    pods["gateway-lookalike-elsewhere"] = Pod("gateway-lookalike-elsewhere", "default", gateway_labels)
    pods["ingress-controller"] = Pod("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    pods["other-in-ingress-namespace"] = Pod("other-in-ingress-namespace", "ingress-nginx", {"app": "x"})
    return pods


def network_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Who reaches whom: the ingress controller the gateway; the gateway and the services the services; no one else."""
    policies = of_kind(documents, "NetworkPolicy")
    problems = [
        f"{ident(p)}: ipBlock peer"
        for p in policies
        for r in p["spec"].get("ingress") or []
        for peer in r.get("from") or []
        if "ipBlock" in peer
    ]
    pods = cluster_pods(documents)
    service_pods = {f"{s}-pod" for s in SERVICES}
    for destination in pods.values():
        if destination.namespace != NAMESPACE:
            continue
        for source in pods.values():
            if destination.name in service_pods:
                expected = source.name in service_pods | {"gateway-pod"}
            elif destination.name == "gateway-pod":
                expected = source.name == "ingress-controller"
            else:  # migration pods and strangers listen on nothing anyone needs
                expected = False
            if ingress_allowed(policies, source, destination, PORT) != expected:
                verb = "cannot" if expected else "can"
                problems.append(f"{source.name} {verb} reach {destination.name}:{PORT}")
        if destination.name in service_pods | {"gateway-pod"}:
            for source in ("gateway-pod", "ingress-controller"):
                if ingress_allowed(policies, pods[source], destination, 5432):
                    problems.append(f"{source} can reach {destination.name}:5432 (only {PORT} is open)")
    return problems


# ---- kubectl, Kustomize, kubernetes-validate -------------------------------------------------------------------


def test_the_tools_are_the_pinned_ones() -> None:
    try:
        installed = importlib.metadata.version("kubernetes-validate")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"kubernetes-validate=={KUBERNETES_VALIDATE} is not installed (a dev dependency)")
    assert installed == KUBERNETES_VALIDATE
    import kubernetes_validate

    assert KUBERNETES_VERSION in {v.rsplit(".", 1)[0] for v in kubernetes_validate.utils.all_versions()}
    version = subprocess.run([kubectl(), "version", "--client", "-o", "json"], capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    kustomize_version = json.loads(version.stdout).get("kustomizeVersion", "")
    assert re.match(r"v[5-9]\.", kustomize_version), f"Kustomize v5 or newer needed, kubectl has {kustomize_version!r}"


# ---- the Kubernetes schemas -------------------------------------------------------------------------------------


def test_the_base_is_valid_against_the_kubernetes_schemas(base: list[dict[str, Any]]) -> None:
    assert schema_problems(base) == []


def test_the_production_overlay_is_valid_against_the_kubernetes_schemas(production: list[dict[str, Any]]) -> None:
    assert schema_problems(production) == []
    kinds = {document["kind"] for document in production}
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Job",
        "Ingress",
        "NetworkPolicy",
    }


def _unknown_field(documents: list[dict[str, Any]]) -> None:
    named(documents, "Deployment", "pledges")["spec"]["replica"] = 2


def _wrong_type(documents: list[dict[str, Any]]) -> None:
    main_container(named(documents, "Deployment", "gateway"))["ports"][0]["containerPort"] = "8000"


def _misspelt_probe(documents: list[dict[str, Any]]) -> None:
    probe = main_container(named(documents, "Deployment", "campaigns"))["readinessProbe"]
    probe["httpGet"]["pth"] = probe["httpGet"].pop("path")


def _old_api_version(documents: list[dict[str, Any]]) -> None:
    named(documents, "HorizontalPodAutoscaler", "pledges")["apiVersion"] = "autoscaling/v2beta2"


@pytest.mark.parametrize(
    ("breaks", "expected"),
    [
        (_unknown_field, "Deployment/pledges: spec: Additional properties"),
        (_wrong_type, "Deployment/gateway: spec/template/spec/containers/0/ports/0/containerPort"),
        (_misspelt_probe, "Deployment/campaigns: spec/template/spec/containers/0/readinessProbe/httpGet"),
        (_old_api_version, "HorizontalPodAutoscaler/pledges: Couldn't find schema"),
    ],
)
def test_the_schema_check_rejects_broken_manifests(
    production: list[dict[str, Any]], breaks: Callable[[list[dict[str, Any]]], None], expected: str
) -> None:
    broken = copy.deepcopy(production)
    breaks(broken)
    problems = schema_problems(broken)
    assert any(problem.startswith(expected) for problem in problems), problems


# ---- the rules, on the base and on production --------------------------------------------------------------------


@pytest.mark.parametrize("rule", [security_problems, resource_problems, probe_problems, replica_problems])
def test_the_base_follows_the_rules(base: list[dict[str, Any]], rule: Callable[..., list[str]]) -> None:
    assert rule(base) == []


@pytest.mark.parametrize(
    "rule", [security_problems, resource_problems, probe_problems, replica_problems, ingress_problems, network_problems]
)
def test_production_follows_the_rules(production: list[dict[str, Any]], rule: Callable[..., list[str]]) -> None:
    assert rule(production) == []


def _init_container_writable(documents: list[dict[str, Any]]) -> None:
    init = pod_spec(named(documents, "Deployment", "pledges"))["initContainers"][0]
    del init["securityContext"]["readOnlyRootFilesystem"]


def _job_as_root(documents: list[dict[str, Any]]) -> None:
    job = migration_job(documents, "refunds")
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0


def _capability_added(documents: list[dict[str, Any]]) -> None:
    main_container(named(documents, "Deployment", "gateway"))["securityContext"]["capabilities"]["add"] = ["NET_RAW"]


def _no_limits(documents: list[dict[str, Any]]) -> None:
    del main_container(named(documents, "Deployment", "gateway"))["resources"]["limits"]


def _readiness_on_healthz(documents: list[dict[str, Any]]) -> None:
    main_container(named(documents, "Deployment", "campaigns"))["readinessProbe"]["httpGet"]["path"] = "/healthz"


def _gateway_readiness_http(documents: list[dict[str, Any]]) -> None:
    main_container(named(documents, "Deployment", "gateway"))["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http"}
    }


def _one_replica(documents: list[dict[str, Any]]) -> None:
    named(documents, "Deployment", "campaigns")["spec"]["replicas"] = 1


def _fixed_count_under_autoscaler(documents: list[dict[str, Any]]) -> None:
    named(documents, "Deployment", "pledges")["spec"]["replicas"] = 3


def _no_gateway_autoscaler(documents: list[dict[str, Any]]) -> None:
    documents.remove(named(documents, "HorizontalPodAutoscaler", "gateway"))


def _literal_secret(documents: list[dict[str, Any]]) -> None:
    for variable in main_container(named(documents, "Deployment", "pledges"))["env"]:
        if variable["name"] == "PLEDGES_STRIPE_API_KEY":
            variable.pop("valueFrom")
            variable["value"] = "sk_live_0123456789abcdef"


def _ingress_to_a_service(documents: list[dict[str, Any]]) -> None:
    path = named(documents, "Ingress", "gateway")["spec"]["rules"][0]["http"]["paths"][0]
    path["backend"]["service"] = {"name": "refunds", "port": {"number": 8000}}


def _load_balancer(documents: list[dict[str, Any]]) -> None:
    named(documents, "Service", "campaigns")["spec"]["type"] = "LoadBalancer"


def _policy_without_namespace(documents: list[dict[str, Any]]) -> None:
    peer = named(documents, "NetworkPolicy", "gateway-from-ingress-controller")["spec"]["ingress"][0]["from"][0]
    del peer["namespaceSelector"]


def _services_open_to_all(documents: list[dict[str, Any]]) -> None:
    del named(documents, "NetworkPolicy", "services-from-gateway-and-services")["spec"]["ingress"][0]["from"]


def _no_default_deny(documents: list[dict[str, Any]]) -> None:
    documents.remove(named(documents, "NetworkPolicy", "default-deny-ingress"))


@pytest.mark.parametrize(
    ("breaks", "rule", "expected"),
    [
        (_init_container_writable, security_problems, "container wait-for-migration: readOnlyRootFilesystem"),
        (_job_as_root, security_problems, "container migrate: does not run as uid 10001"),
        (_capability_added, security_problems, "container gateway: capabilities"),
        (_no_limits, resource_problems, "container gateway: no cpu request and limit"),
        (_readiness_on_healthz, probe_problems, "Deployment/campaigns: readiness probe is not an httpGet of /readyz"),
        (_gateway_readiness_http, probe_problems, "Deployment/gateway: readiness httpGet would fail"),
        (_one_replica, replica_problems, "Deployment/campaigns: 1 replica"),
        (_fixed_count_under_autoscaler, replica_problems, "Deployment/pledges: replicas 3 would reset"),
        (_no_gateway_autoscaler, replica_problems, "Deployment/gateway: 1 replica"),
        (_ingress_to_a_service, ingress_problems, "Ingress/gateway: routes to"),
        (_load_balancer, ingress_problems, "Service/campaigns: LoadBalancer"),
        (_policy_without_namespace, network_problems, "ingress-controller cannot reach gateway-pod"),
        (_services_open_to_all, network_problems, "stranger can reach campaigns-pod"),
        (_no_default_deny, network_problems, "stranger can reach campaigns-migration"),
    ],
)
def test_the_rules_reject_broken_manifests(
    production: list[dict[str, Any]],
    breaks: Callable[[list[dict[str, Any]]], None],
    rule: Callable[[list[dict[str, Any]]], list[str]],
    expected: str,
) -> None:
    assert rule(production) == []
    broken = copy.deepcopy(production)
    breaks(broken)
    problems = rule(broken)
    assert any(expected in problem for problem in problems), problems


def test_the_secret_rule_rejects_a_literal_secret(production: list[dict[str, Any]]) -> None:
    values = set(secret_test_values().values())
    broken = copy.deepcopy(production)
    _literal_secret(broken)
    problems = secret_problems(broken, values)
    assert "Deployment/pledges: PLEDGES_STRIPE_API_KEY is not from a Secret" in problems
    assert "Deployment/pledges: PLEDGES_STRIPE_API_KEY holds a credential" in problems


# ---- deployments, services, disruption budgets ----------------------------------------------------------------


def test_a_deployment_service_and_disruption_budget_per_component(production: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(production, "Deployment")}
    assert set(deployments) == set(COMPONENTS)
    jobs = of_kind(production, "Job")
    for name, deployment in deployments.items():
        labels = pod_labels(deployment)
        assert labels["app.kubernetes.io/name"] == name
        assert labels["app.kubernetes.io/part-of"] == "crowdfund"
        assert selector_matches(deployment["spec"]["selector"], labels)
        # The Service: this Deployment's pods and nothing else (above all not the migration Job's pods, which
        # listen on nothing and would be endpoints while they run).
        service = named(production, "Service", name)
        assert service["spec"]["type"] == "ClusterIP"
        assert selector_matches({"matchLabels": service["spec"]["selector"]}, labels)
        for other in [*deployments.values(), *jobs]:
            if other is not deployment:
                assert not selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(other))
        (port,) = service["spec"]["ports"]
        assert port["port"] == PORT
        assert container_port(deployment, port["targetPort"]) == PORT
        # A disruption budget that lets a drain take one pod at a time and no more.
        budget = named(production, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
        assert budget["spec"].get("maxUnavailable") == 1
        assert "minAvailable" not in budget["spec"]


def test_the_images_carry_the_release_tag(base: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    tag = release_tag()
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", tag), f"{tag!r}: the Jobs' names are made of it"
    for documents, suffix in ((base, ""), (production, f":{tag}")):
        for workload in workloads(documents):
            for container in all_containers(workload):
                assert container["image"] == f"crowdfund/{component_of(workload)}{suffix}", ident(workload)


def test_the_containers_match_the_images(production: list[dict[str, Any]]) -> None:
    """The uid and the port that the component's target of deploy/Dockerfile sets."""
    for name in COMPONENTS:
        image = image_stage(name)
        assert image["USER"][-1] == f"{UID}:{UID}", name
        assert '"--port", "8000"' in image["CMD"][-1], name
        assert image["EXPOSE"][-1] == str(PORT), name
        assert "command" not in main_container(named(production, "Deployment", name)), "the image's CMD serves"


# ---- migrations -------------------------------------------------------------------------------------------------


def test_a_migration_job_per_service_and_release(base: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    tag = release_tag()
    for documents, suffix in ((base, ""), (production, f"-{tag}")):
        assert len(of_kind(documents, "Job")) == len(SERVICES)
        for service in SERVICES:
            job = migration_job(documents, service)
            name = job["metadata"]["name"]
            assert name == f"{service}-migrate{suffix}"
            assert len(name) <= 63, name
            assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", name), name
            (container,) = pod_spec(job)["containers"]
            assert container["command"] == ["python", "-m", "tools.migrate", service]
            deployment = named(documents, "Deployment", service)
            assert container["image"] == main_container(deployment)["image"]
            assert pod_spec(job)["restartPolicy"] == "Never"
            assert job["spec"]["backoffLimit"] >= 1
            assert "initContainers" not in pod_spec(job)
    assert not any(component_of(job) == "gateway" for job in of_kind(production, "Job")), "no database, no migration"


def test_each_service_pod_waits_for_its_migration(base: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    for documents in (base, production):
        for service in SERVICES:
            deployment = named(documents, "Deployment", service)
            (init,) = pod_spec(deployment)["initContainers"]
            command = init["command"]
            assert command[:5] == ["python", "-m", "tools.migrate", service, "--wait"], command
            assert len(command) == 6, command
            assert float(command[5]) >= 60, command
            main = main_container(deployment)
            assert init["image"] == main["image"]
            # The same settings as the service: the same database, and Settings() must load in production mode.
            assert init["env"] == main["env"]
            assert init["envFrom"] == main["envFrom"]
        assert "initContainers" not in pod_spec(named(documents, "Deployment", "gateway"))
    result = subprocess.run([sys.executable, "-m", "tools.migrate", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "--wait SECONDS" in result.stdout, result.stdout


def test_a_migration_job_runs_with_the_service_settings(production: list[dict[str, Any]]) -> None:
    for service in SERVICES:
        (job_container,) = pod_spec(migration_job(production, service))["containers"]
        job = environment(job_container, production)
        main = environment(main_container(named(production, "Deployment", service)), production)
        assert job[f"{service.upper()}_ENVIRONMENT"] == "production"
        different = {k for k, v in job.items() if main.get(k) != v and not k.endswith("_LOG_LEVEL")}
        assert different == set(), f"{service}: the Job and the service disagree on {different}"
        # A fixed-name Secret and no ConfigMap: changing a value never changes an existing Job's pod template.
        assert "envFrom" not in job_container
        refs = {v["valueFrom"]["secretKeyRef"]["name"] for v in job_container["env"] if "valueFrom" in v}
        assert refs == {"crowdfund-migration-secrets"}


# ---- ingress, network policies, namespace -----------------------------------------------------------------------


def test_only_the_gateway_is_reachable_from_outside(production: list[dict[str, Any]]) -> None:
    (ingress,) = of_kind(production, "Ingress")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert all(path["path"] == "/" for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"])
    # The gateway accepts bodies up to 10 MiB (GATEWAY_MAX_REQUEST_BODY_BYTES) and streams progress events.
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "10m"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    policies = {policy["metadata"]["name"] for policy in of_kind(production, "NetworkPolicy")}
    assert policies == {"default-deny-ingress", "services-from-gateway-and-services", "gateway-from-ingress-controller"}


def test_everything_lives_in_a_restricted_namespace(production: list[dict[str, Any]]) -> None:
    (namespace,) = of_kind(production, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for document in production:
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == NAMESPACE, ident(document)


# ---- secrets ------------------------------------------------------------------------------------------------------


def test_no_secret_is_written_in_the_manifests(base: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    values = set(secret_test_values().values())
    assert of_kind(base, "Secret") == []
    assert secret_problems(base, values) == []
    assert secret_problems(production, values) == []
    # The Secrets come from secrets.env and from nothing else (no literals, no committed Secret).
    secrets = {s["metadata"]["name"]: decoded(s) for s in of_kind(production, "Secret")}
    assert {name.rsplit("-", 1)[0] if name.startswith("crowdfund-secrets-") else name for name in secrets} == {
        "crowdfund-secrets",
        "crowdfund-migration-secrets",
    }
    assert all(data == secret_test_values() for data in secrets.values())
    generators = overlay_kustomization()["secretGenerator"]
    assert all(
        generator["envs"] == ["secrets.env"] and set(generator) <= {"name", "envs", "options"}
        for generator in generators
    )


def test_the_committed_files_hold_placeholders_only() -> None:
    committed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "deploy/k8s"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert committed.returncode == 0, committed.stderr
    files = [ROOT / line for line in committed.stdout.splitlines()]
    assert K8S / PRODUCTION / "kustomization.yaml" in files
    assert K8S / PRODUCTION / "secrets.env" not in files
    for path in files:
        text = path.read_text()
        assert not SECRET_LOOKING.search(text), f"{path}: a Stripe key or webhook secret"
        for match in CREDENTIALS_IN_URL.finditer(text):
            # REPLACE_ME (secrets.env.example) or a <name> in prose (README.md): placeholders, never a password.
            assert match.group(1) == PLACEHOLDER or re.fullmatch(r"<[a-z-]+>", match.group(1)), (
                f"{path}: a password in a URL: {match.group(0)}"
            )
        for document in yaml.safe_load_all(text) if path.suffix == ".yaml" else []:
            assert not (isinstance(document, dict) and document.get("kind") == "Secret"), f"{path}: a Secret"
    # Every value of the example is a placeholder; every key is one the manifests read, and the reverse.
    example = example_secrets()
    assert all(PLACEHOLDER in value for value in example.values()), example


def test_secrets_env_is_ignored_by_git() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", str(K8S / PRODUCTION / "secrets.env")], cwd=ROOT
    )
    assert result.returncode == 0, "deploy/k8s/.gitignore must keep overlays/*/secrets.env out of git"


def test_the_overlay_does_not_render_without_secrets_env(tmp_path: Path) -> None:
    """A checkout cannot deploy placeholders: without secrets.env, Kustomize stops and names the file."""
    workdir = copy_of_deploy_k8s(tmp_path, with_secrets=False)
    result = kustomize(workdir / PRODUCTION)
    assert result.returncode != 0
    assert "secrets.env" in result.stderr


def test_every_secret_the_manifests_read_is_in_the_example(
    base: list[dict[str, Any]], production: list[dict[str, Any]]
) -> None:
    for documents in (base, production):
        read = {
            variable["valueFrom"]["secretKeyRef"]["key"]
            for workload in workloads(documents)
            for container in all_containers(workload)
            for variable in container.get("env", [])
            if "secretKeyRef" in (variable.get("valueFrom") or {})
        }
        assert read == set(example_secrets()), (
            f"read but not documented: {read - set(example_secrets())}; unused: {set(example_secrets()) - read}"
        )


# ---- settings: names the code reads, values it accepts in production -------------------------------------------


def test_every_variable_is_one_the_code_reads(base: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    for documents in (base, production):
        for workload in workloads(documents):
            component = component_of(workload)
            known = settings_variables(component) | (UVICORN_ENV if component == "gateway" else set())
            for container in all_containers(workload):
                unknown = environment_names(container, documents) - known
                assert unknown == set(), f"{ident(workload)} {container['name']}: nothing reads {unknown}"
    import uvicorn.config

    assert all(f'"{name}"' in Path(uvicorn.config.__file__).read_text() for name in UVICORN_ENV)


def test_every_setting_compose_gives_kubernetes_gives_too(production: list[dict[str, Any]]) -> None:
    """Cross-check with deploy/docker-compose.yml: what compose sets and the code reads is set here as well."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for component in COMPONENTS:
        prefix = settings_class(component).model_config["env_prefix"]
        from_compose = set(compose["services"][component]["environment"]) & settings_variables(component)
        # STRIPE_API_BASE: compose defaults it to the real API; here it is left out, which means the same.
        from_compose -= {f"{prefix}STRIPE_API_BASE"}
        here = environment_names(main_container(named(production, "Deployment", component)), production)
        assert from_compose <= here, f"{component}: missing {from_compose - here}"
        assert f"{prefix}STRIPE_API_BASE" not in here, "production talks to the real Stripe API"


def load_settings(component: str, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    cls = settings_class(component)
    prefix = cls.model_config["env_prefix"]
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(prefix):
                patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return cls()


def test_each_component_loads_its_settings_in_production_mode(
    production: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each component's own Settings class loads what its containers get (service, init container, Job)."""
    secrets = secret_test_values()
    services = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in of_kind(production, "Service")}
    for workload in workloads(production):
        component = component_of(workload)
        for container in all_containers(workload):
            env = environment(container, production)
            settings = load_settings(component, env, monkeypatch)
            where = f"{ident(workload)} {container['name']}"
            assert settings.environment == "production", where
            assert settings.jwt_secret.get_secret_value() == secrets["JWT_SECRET"], where
            assert settings.service_token_secret.get_secret_value() == secrets["SERVICE_TOKEN_SECRET"], where
            # Every address of another component is one of the Services, on its port.
            for key, value in env.items():
                if value.startswith("http://"):
                    url = urlsplit(value)
                    assert services.get(url.hostname) == url.port, f"{where}: {key}={value}"
            if component == "gateway":
                assert settings.service_urls() == {s: f"http://{s}:{PORT}" for s in SERVICES}
                assert settings.rate_limit_storage_uri == secrets["GATEWAY_RATE_LIMIT_STORAGE_URI"]
                assert urlsplit(settings.rate_limit_storage_uri).scheme in ("redis", "rediss"), "shared counters"
                continue
            url = urlsplit(settings.database_url)
            assert settings.database_url == secrets[f"{component.upper()}_DATABASE_URL"], where
            assert (url.scheme, url.path, url.username) == ("postgresql+asyncpg", f"/{component}", component), where
            if component != "campaigns":
                assert settings.stripe_api_key.get_secret_value() == secrets["STRIPE_API_KEY"], where
                webhook = secrets[f"{component.upper()}_STRIPE_WEBHOOK_SECRET"]
                assert settings.stripe_webhook_secret.get_secret_value() == webhook, where
                assert settings.stripe_api_base is None, f"{where}: production uses the real Stripe API"
            if workload["kind"] == "Job":
                continue  # a migration needs its database, and Settings() to load; no other component's address
            pool_size = env[f"{component.upper()}_DATABASE_POOL_SIZE"]
            assert settings.database_pool_size == int(pool_size) >= 1, where
            if component == "campaigns":
                assert settings.pledges_events_url == f"http://pledges:{PORT}/internal/events", where
                assert [s.url for s in settings.event_subscribers()] == [settings.pledges_events_url]
            else:
                assert settings.campaigns_url == f"http://campaigns:{PORT}", where
                other = "refunds" if component == "pledges" else "pledges"
                assert getattr(settings, f"{other}_url") == f"http://{other}:{PORT}", where
            if component == "pledges":
                assert [s.url for s in settings.event_subscribers()] == [f"http://campaigns:{PORT}/internal/events"]


def test_production_settings_refuse_a_missing_secret(
    production: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: without one of its secrets, a component's Settings refuses production."""
    pledges = environment(main_container(named(production, "Deployment", "pledges")), production)
    for missing in ("PLEDGES_STRIPE_WEBHOOK_SECRET", "PLEDGES_SERVICE_TOKEN_SECRET"):
        with pytest.raises(ValueError, match="production settings need"):
            load_settings("pledges", {k: v for k, v in pledges.items() if k != missing}, monkeypatch)


def test_the_gateway_can_use_the_shared_rate_limit_storage(production: list[dict[str, Any]]) -> None:
    from gateway.ratelimit import ClientRateLimiter

    uri = environment(main_container(named(production, "Deployment", "gateway")), production)[
        "GATEWAY_RATE_LIMIT_STORAGE_URI"
    ]
    ClientRateLimiter("50/second", uri)


# ---- the gateway's probe, run for real against a local HTTP server ----------------------------------------------


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(self.server.delay)  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.status = 200  # type: ignore[attr-defined]
    server.delay = 0.0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def run_probe(code: str, port: int) -> int:
    assert code.count(str(PORT)) == 1
    command = [sys.executable, "-c", code.replace(str(PORT), str(port))]
    return subprocess.run(command, capture_output=True, timeout=30).returncode


def test_the_gateway_probes_pass_while_a_service_is_down(
    production: list[dict[str, Any]], http_server: http.server.ThreadingHTTPServer
) -> None:
    gateway = main_container(named(production, "Deployment", "gateway"))
    codes = {gateway_probe_code(gateway[probe]) for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    (code,) = codes
    port = http_server.server_address[1]
    for status, exit_code in {200: 0, 503: 0, 500: 1, 404: 1}.items():
        http_server.status = status  # type: ignore[attr-defined]
        assert run_probe(code, port) == exit_code, status
    # A hanging service makes /healthz wait its 2 s before answering 503: still alive, still ready.
    http_server.status, http_server.delay = 503, 2.5  # type: ignore[attr-defined]
    assert run_probe(code, port) == 0
    # Nothing listening: not alive.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    assert run_probe(code, closed_port) != 0
