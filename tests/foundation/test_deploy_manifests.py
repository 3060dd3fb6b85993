"""The deployment files: deploy/k8s rendered with `kubectl kustomize` (base and both overlays)
and validated against the Kubernetes schemas (kubernetes-validate, offline), the properties
issue 7 asks of them (probes, non-root, read-only root filesystem, resources, autoscalers,
disruption budgets, a migration Job before rollout, Secret references only, NetworkPolicies),
the Dockerfile and docker-compose.yml. Every command must point at code that exists."""

from __future__ import annotations

import copy
import fnmatch
import importlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.notifications.deliveries import delivery
from services.notifications.worker import JOBS_SETTLE_S
from shared.config import Settings
from shared.jobs.queue import HEALTH_CHECK_INTERVAL_S
from shared.jobs.worker_main import SETTLE_AFTER_CANCEL_S
from tools.children import KEEP_ALIVE_S, child_commands

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = ("staging", "production")
TARGETS = ("base", *OVERLAYS)
K8S_VERSION = "1.30"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

APIS = {"booking": 8001, "policy": 8002, "webhooks": 8003, "notifications": 8004}
WORKERS = ("booking", "webhooks", "notifications")
WORKER_METRICS_PORT = 9100
SECRET = "appointments-secrets"
REQUIRED_SECRET_KEYS = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
PHASE_LABEL, PRE_ROLLOUT = "appointments/phase", "pre-rollout"
NAMESPACE = {
    "base": "appointments",
    "staging": "appointments-staging",
    "production": "appointments",
}
ENVIRONMENT = {"base": "production", "staging": "staging", "production": "production"}
# (minReplicas, maxReplicas) per HPA.
HPA_BOUNDS = {
    "base": {"booking": (2, 6), "webhooks": (2, 6)},
    "staging": {"booking": (1, 3), "webhooks": (1, 3)},
    "production": {"booking": (3, 20), "webhooks": (3, 10)},
}
# Fixed replicas of the Deployments without an HPA.
REPLICAS = {
    "base": {"policy": 2, "notifications": 2} | {f"{w}-worker": 1 for w in WORKERS},
    "staging": {"policy": 1, "notifications": 1} | {f"{w}-worker": 1 for w in WORKERS},
    "production": {"policy": 3, "notifications": 3} | {f"{w}-worker": 2 for w in WORKERS},
}
# Settings the tracing and worker-metrics work of issue 7 reads from the environment.
EXTRA_SETTINGS = {"TRACING_EXPORTER", "WORKER_METRICS_PORT"}
SETTINGS_ENV = {name.upper() for name in Settings.model_fields} | EXTRA_SETTINGS

Manifest = dict[str, Any]


# --- rendering ---------------------------------------------------------------------------------


@cache
def _rendered(target: str) -> tuple[Manifest, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if IN_CI:
            pytest.fail("kubectl is required to render deploy/k8s (CI=true)", pytrace=False)
        pytest.skip("kubectl is not installed: deploy/k8s cannot be rendered")
    path = BASE if target == "base" else K8S / "overlays" / target
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(target: str) -> list[Manifest]:
    return copy.deepcopy(list(_rendered(target)))


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[Manifest]) -> dict[str, Manifest]:
    """Deployments and Jobs by name."""
    return of_kind(docs, "Deployment") | of_kind(docs, "Job")


def container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return dict(containers[0])


def image_tag(target: str) -> str | None:
    if target == "base":
        return None
    kustomization = yaml.safe_load((K8S / "overlays" / target / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    return str(image["newTag"])


def assert_code_exists(target: str) -> None:
    """`module:attr` or `module.attr` names something importable."""
    module, _, attr = target.replace(":", ".").rpartition(".")
    assert hasattr(importlib.import_module(module), attr), target


def quantity(value: str | int) -> float:
    text = str(value)
    for unit, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("m", 1e-3)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    return float(text)


# --- files and schemas -------------------------------------------------------------------------


def test_the_base_uses_every_file_in_it_and_no_kustomization_uses_the_secret_example() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    used = set(kustomization["resources"])
    used |= {patch["path"] for patch in kustomization["patches"]}
    used |= {env for gen in kustomization["configMapGenerator"] for env in gen["envs"]}
    assert used == {p.name for p in BASE.iterdir() if p.is_file()} - {"kustomization.yaml"}
    kustomizations = list(K8S.rglob("kustomization.yaml"))
    assert len(kustomizations) == 3
    for path in kustomizations:
        assert "secret.example" not in path.read_text(), path


@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_object_is_valid_for_kubernetes(target: str) -> None:
    docs = render(target)
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        [
            "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "Namespace",
            "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount",
        ]
    )  # fmt: skip
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.path))
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} {path}: {exc.message}")
    assert errors == []


def test_the_schema_validation_catches_misspelt_and_mistyped_fields() -> None:
    deployment = copy.deepcopy(of_kind(render("production"), "Deployment")["booking"])
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)

    misspelt = copy.deepcopy(deployment)
    security = misspelt["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    security["readOnlyRootFileSystem"] = security.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)

    mistyped = copy.deepcopy(deployment)
    mistyped["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8001"
    with pytest.raises(kubernetes_validate.ValidationError, match="'8001' is not of type"):
        kubernetes_validate.validate(mistyped, K8S_VERSION, strict=True)


# --- workloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_one_deployment_per_api_and_worker_running_code_that_exists(target: str) -> None:
    deployments = of_kind(render(target), "Deployment")
    assert set(deployments) == set(APIS) | {f"{w}-worker" for w in WORKERS}
    for name, port in APIS.items():
        command = container(deployments[name])["command"]
        assert command[:3] == ["uvicorn", "--factory", f"services.{name}.app:create"]
        assert f"--port={port}" in command
        assert f"--timeout-keep-alive={KEEP_ALIVE_S}" in command
        assert_code_exists(command[2])
    run_children = child_commands(Settings())
    for worker in WORKERS:
        command = container(deployments[f"{worker}-worker"])["command"]
        # Our entry point (drain on SIGTERM, ADR 0018/0020), as `appointments run` starts it.
        assert command == [
            "python", "-m", "shared.jobs.worker_main", f"services.{worker}.worker.WorkerSettings"
        ]  # fmt: skip
        assert command[1:] == run_children[f"{worker}-worker"][1:]
        assert_code_exists("shared.jobs.worker_main.main")
        assert_code_exists(command[3])


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_unprivileged_with_a_read_only_root_and_resources(target: str) -> None:
    docs = render(target)
    tag = image_tag(target)
    image = "appointments" if tag is None else f"registry.example.com/appointments:{tag}"
    pods = workloads(docs)
    assert len(pods) == 8
    for name, workload in pods.items():
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name
        assert spec["serviceAccountName"] == "appointments"
        assert spec["automountServiceAccountToken"] is False
        # Service links would set BOOKING_PORT=tcp://..., which the settings read as a port.
        assert spec["enableServiceLinks"] is False, name
        main = container(workload)
        assert main["image"] == image, name
        security = main["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert main["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}], name
        assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}], name
        resources = main["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources["requests"][kind], resources["limits"][kind]
            assert 0 < quantity(request) <= quantity(limit), (name, kind)


def test_overlays_size_production_above_staging() -> None:
    def requests(target: str) -> dict[str, float]:
        return {
            name: quantity(container(d)["resources"]["requests"]["memory"])
            for name, d in of_kind(render(target), "Deployment").items()
        }

    staging, production = requests("staging"), requests("production")
    assert all(staging[name] < production[name] for name in staging), (staging, production)
    for target in TARGETS:
        deployments = of_kind(render(target), "Deployment")
        replicas = {
            n: d["spec"]["replicas"] for n, d in deployments.items() if "replicas" in d["spec"]
        }
        assert replicas == REPLICAS[target], target


@pytest.mark.parametrize("target", TARGETS)
def test_apis_have_health_probes_metrics_annotations_and_a_service(target: str) -> None:
    docs = render(target)
    deployments, services = of_kind(docs, "Deployment"), of_kind(docs, "Service")
    assert set(services) == set(APIS)
    ready_timeout = Settings.model_fields["health_check_timeout_s"].default
    for name, port in APIS.items():
        template = deployments[name]["spec"]["template"]
        main = container(deployments[name])
        assert main["ports"] == [{"name": "http", "containerPort": port}]
        readiness, liveness = main["readinessProbe"], main["livenessProbe"]
        assert readiness["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert liveness["httpGet"] == {"path": "/health/live", "port": "http"}
        assert main["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        # /health/ready answers 503 itself after health_check_timeout_s: the probe waits longer.
        assert readiness["timeoutSeconds"] > ready_timeout
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        service = services[name]["spec"]
        assert service["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
        labels = template["metadata"]["labels"]
        assert service["selector"].items() <= labels.items()
        assert deployments[name]["spec"]["selector"]["matchLabels"] == service["selector"]


@pytest.mark.parametrize("target", TARGETS)
def test_workers_are_probed_with_arq_check_and_expose_metrics(target: str) -> None:
    docs = render(target)
    deployments = of_kind(docs, "Deployment")
    (config,) = of_kind(docs, "ConfigMap").values()
    assert config["data"]["WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)
    for worker in WORKERS:
        workload = deployments[f"{worker}-worker"]
        main = container(workload)
        check = ["arq", "--check", f"services.{worker}.worker.WorkerSettings"]
        for probe_name in ("startupProbe", "livenessProbe"):
            probe = main[probe_name]
            assert probe["exec"] == {"command": check}, probe_name
            # The worker refreshes its health key every HEALTH_CHECK_INTERVAL_S: probing more
            # often tells nothing new; a restart needs several missed heartbeats.
            assert probe["periodSeconds"] >= HEALTH_CHECK_INTERVAL_S
            assert probe["timeoutSeconds"] < probe["periodSeconds"]
        liveness = main["livenessProbe"]
        restart_after = liveness["periodSeconds"] * liveness["failureThreshold"]
        assert restart_after >= 3 * HEALTH_CHECK_INTERVAL_S
        assert "readinessProbe" not in main
        assert main["ports"] == [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}]
        assert workload["spec"]["template"]["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(WORKER_METRICS_PORT),
            "prometheus.io/path": "/metrics",
        }


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_stops_gracefully_within_its_grace_period(target: str) -> None:
    """APIs: a preStop pause (endpoints removed first), then uvicorn's graceful shutdown, both
    within the grace period. Workers: the drain, then the cancelled jobs' settling, within it;
    the notifications worker also lets a send under way finish (ADR 0020), so a stop never
    SIGKILLs one between the relay's acceptance and its record."""
    docs = render(target)
    deployments = of_kind(docs, "Deployment")
    (config,) = of_kind(docs, "ConfigMap").values()
    data = config["data"]

    def setting(name: str) -> float:
        return float(data.get(name.upper(), Settings.model_fields[name].default))

    for name in APIS:
        spec = deployments[name]["spec"]["template"]["spec"]
        main = container(deployments[name])
        grace = spec["terminationGracePeriodSeconds"]
        assert grace == 30, name
        pre_stop = main["lifecycle"]["preStop"]["exec"]["command"]
        # The runtime image is Debian slim (coreutils' sleep; see the Dockerfile test).
        assert pre_stop[0] == "sleep", name
        graceful = [
            arg for arg in main["command"] if arg.startswith("--timeout-graceful-shutdown=")
        ]
        assert len(graceful) == 1, name
        # The lifespan's own shutdown (pools, clients) needs a few seconds after uvicorn's.
        assert float(pre_stop[1]) + float(graceful[0].split("=")[1]) + 5 <= grace, name

    drain_s = setting("worker_drain_timeout_s")
    assert drain_s == 25
    units = Settings.model_construct(
        smtp_timeout_s=setting("smtp_timeout_s"), messaging_timeout_s=setting("messaging_timeout_s")
    )
    for worker in WORKERS:
        spec = deployments[f"{worker}-worker"]["spec"]["template"]["spec"]
        grace = spec["terminationGracePeriodSeconds"]
        needed = drain_s + SETTLE_AFTER_CANCEL_S
        if worker == "notifications":
            needed = max(needed, drain_s + delivery.longest_unit_s(units) + JOBS_SETTLE_S + 2)
            assert grace <= 60, "a stuck pod should not hold a rollout longer than a minute"
        else:
            assert grace == 30, worker
        assert grace >= needed, (worker, grace, needed)


@pytest.mark.parametrize("target", TARGETS)
def test_booking_and_webhooks_autoscale_and_the_apis_have_disruption_budgets(target: str) -> None:
    docs = render(target)
    deployments = of_kind(docs, "Deployment")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert {n: (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) for n, h in hpas.items()} == (
        HPA_BOUNDS[target]
    )
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        # The HPA owns the count: a `replicas` in the Deployment would reset it on every apply.
        assert "replicas" not in deployments[name]["spec"]

    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert set(pdbs) == set(APIS)
    for name, pdb in pdbs.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if name in hpas:
            fewest_pods = hpas[name]["spec"]["minReplicas"]
        else:
            fewest_pods = deployments[name]["spec"]["replicas"]
        if target == "production":
            assert pdb["spec"] == {"minAvailable": 2, "selector": pdb["spec"]["selector"]}
            # A node drain can still evict one pod at a time.
            assert fewest_pods > 2
        else:
            assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]


# --- migration before rollout ------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_the_migration_job_is_named_after_the_release_and_applied_first(target: str) -> None:
    docs = render(target)
    (job,) = of_kind(docs, "Job").values()
    tag = image_tag(target)
    assert job["metadata"]["name"] == f"migrate-{tag or 'unreleased'}"
    main = container(job)
    assert main["command"] == ["appointments", "migrate"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert_code_exists(scripts["appointments"])
    assert main["image"] == container(of_kind(docs, "Deployment")["booking"])["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] <= 2 and job["spec"]["activeDeadlineSeconds"] == 600
    # Kept after it finished: re-applying an older release must not migrate again.
    assert "ttlSecondsAfterFinished" not in job["spec"]

    # `kubectl apply -l appointments/phase=pre-rollout` applies what the Job needs, no workload.
    first = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get(PHASE_LABEL) == PRE_ROLLOUT
    }
    (config,) = of_kind(docs, "ConfigMap")
    assert first == {
        ("Namespace", NAMESPACE[target]),
        ("ServiceAccount", "appointments"),
        ("ConfigMap", config),
        ("Job", job["metadata"]["name"]),
    } | {("NetworkPolicy", name) for name in of_kind(docs, "NetworkPolicy")}


def test_the_runbook_commands_match_the_manifests() -> None:
    readme = (K8S / "README.md").read_text()
    docs = render("production")
    (selector,) = re.findall(r'kubectl apply -k "\$OVERLAY" -l (\S+)', readme)
    assert selector == f"{PHASE_LABEL}={PRE_ROLLOUT}"
    assert 'kubectl -n "$NS" wait --for=condition=complete --timeout=11m "job/migrate-$TAG"' in (
        readme
    )
    assert f"job/migrate-{image_tag('production')}" in {
        f"job/{name}" for name in of_kind(docs, "Job")
    }
    # Every other label selector of the runbook reaches the objects it means.
    deployments, jobs = of_kind(docs, "Deployment"), of_kind(docs, "Job")
    expected = {
        ("deployment", "app.kubernetes.io/part-of=appointments"): set(deployments),
        ("pods", "app.kubernetes.io/part-of=appointments"): set(workloads(docs)),
        ("jobs", "app.kubernetes.io/component=migration"): set(jobs),
    }
    assert set(re.findall(r"\b(deployment|pods|jobs) -l\s+([^\s`]+)", readme)) == set(expected)
    for (kind, selector), names in expected.items():
        key, value = selector.split("=")
        objects = {"deployment": deployments, "jobs": jobs, "pods": workloads(docs)}[kind]
        labels_of = {
            n: (d["spec"]["template"]["metadata"] if kind == "pods" else d["metadata"])["labels"]
            for n, d in objects.items()
        }
        assert {n for n, labels in labels_of.items() if labels.get(key) == value} == names
    (undo_loop,) = re.findall(r"for d in ([a-z -]+); do", readme)
    assert set(undo_loop.split()) == set(deployments)
    assert "alembic -c /app/alembic.ini" in readme and (ROOT / "alembic.ini").is_file()


# --- configuration and secrets -----------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_namespace_and_configuration(target: str) -> None:
    docs = render(target)
    (namespace,) = of_kind(docs, "Namespace").values()
    assert namespace["metadata"]["name"] == NAMESPACE[target]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE[target], doc["metadata"]["name"]
    ((config_name, config),) = of_kind(docs, "ConfigMap").items()
    data = config["data"]
    assert data["ENVIRONMENT"] == ENVIRONMENT[target]
    assert data["LOG_JSON"] == "true" and data["TRACING_EXPORTER"] == "none"
    assert data["POLICY_SERVICE_URL"] == f"http://policy:{APIS['policy']}"
    assert set(data) <= SETTINGS_ENV, set(data) - SETTINGS_ENV
    assert not set(data) & set(secret_example()), "a secret in the ConfigMap"
    for name, workload in workloads(docs).items():
        assert container(workload)["envFrom"] == [{"configMapRef": {"name": config_name}}], name


def secret_example() -> dict[str, str]:
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", SECRET)
    return dict(secret["stringData"])


def test_the_secret_example_holds_placeholders_only() -> None:
    example = secret_example()
    assert set(example) <= SETTINGS_ENV
    assert set(example) >= REQUIRED_SECRET_KEYS
    assert all("CHANGE-ME" in value for value in example.values()), example


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_are_referenced_never_included(target: str) -> None:
    docs = render(target)
    assert "Secret" not in {d["kind"] for d in docs}
    for name, workload in workloads(docs).items():
        env = container(workload)["env"]
        assert all(set(var) == {"name", "valueFrom"} for var in env), name
        refs = {var["name"]: var["valueFrom"]["secretKeyRef"] for var in env}
        assert set(refs) == set(secret_example()), name
        for key, ref in refs.items():
            assert ref["name"] == SECRET and ref["key"] == key
            # A missing required key stops the pod instead of a silent fallback (e.g. SQLite).
            assert ref.get("optional", False) is (key not in REQUIRED_SECRET_KEYS), key


# --- network policies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    labels: Mapping[str, str]
    namespace: str
    namespace_labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)


def outside_pod(namespace: str) -> Pod:
    return Pod({"app": "other"}, namespace, {"kubernetes.io/metadata.name": namespace})


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


class Network:
    """NetworkPolicy semantics (enough for these manifests): a pod selected by no policy of a
    direction allows everything in it; otherwise one rule must match peer and port. `peer`
    None is an address outside the cluster."""

    def __init__(self, docs: list[Manifest]) -> None:
        self.policies = list(of_kind(docs, "NetworkPolicy").values())
        (namespace,) = of_kind(docs, "Namespace").values()
        self.namespace = namespace["metadata"]["name"]
        self.namespace_labels = {
            **namespace["metadata"]["labels"],
            "kubernetes.io/metadata.name": self.namespace,
        }
        self.pods: dict[str, Pod] = {}
        for name, workload in workloads(docs).items():
            template = workload["spec"]["template"]
            ports = {p["name"]: p["containerPort"] for p in container(workload).get("ports", [])}
            labels = template["metadata"]["labels"]
            self.pods[name] = Pod(labels, self.namespace, self.namespace_labels, ports)

    def _allowed(
        self, direction: str, selected: Pod, peer: Pod | None, port: int, protocol: str
    ) -> bool:
        key = "ingress" if direction == "Ingress" else "egress"
        peers_key = "from" if direction == "Ingress" else "to"
        # Named ports belong to the pod that receives the traffic.
        receiver = selected if direction == "Ingress" else peer
        named = receiver.ports if receiver else {}
        applicable = [
            p["spec"]
            for p in self.policies
            if direction in p["spec"]["policyTypes"]
            and selects(p["spec"]["podSelector"], selected.labels)
        ]
        if not applicable:
            return True
        for spec in applicable:
            for rule in spec.get(key, []):
                peers = rule.get(peers_key)
                if peers and not any(self._peer_matches(each, peer) for each in peers):
                    continue
                ports = rule.get("ports")
                if not ports or any(
                    p.get("protocol", "TCP") == protocol
                    and (p["port"] == port or named.get(p["port"]) == port)
                    for p in ports
                ):
                    return True
        return False

    def _peer_matches(self, peer_rule: Mapping[str, Any], peer: Pod | None) -> bool:
        if "ipBlock" in peer_rule:
            return peer is None
        if peer is None:
            return False
        if "namespaceSelector" in peer_rule:
            if not selects(peer_rule["namespaceSelector"], peer.namespace_labels):
                return False
        elif peer.namespace != self.namespace:
            return False
        return selects(peer_rule.get("podSelector", {}), peer.labels)

    def ingress(self, to: str, source: Pod, port: int) -> bool:
        return self._allowed("Ingress", self.pods[to], source, port, "TCP")

    def egress(self, source: str, to: Pod | None, port: int, protocol: str = "TCP") -> bool:
        return self._allowed("Egress", self.pods[source], to, port, protocol)


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_deny_by_default_and_allow_what_the_services_need(target: str) -> None:
    docs = render(target)
    net = Network(docs)
    default_deny = of_kind(docs, "NetworkPolicy")["default-deny"]["spec"]
    assert default_deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress_controller, monitoring = outside_pod("ingress-nginx"), outside_pod("monitoring")
    stranger = outside_pod("default")
    workers = [f"{w}-worker" for w in WORKERS]

    for name, port in APIS.items():
        assert net.ingress(name, ingress_controller, port), name
        assert not net.ingress(name, stranger, port), name
        assert not net.ingress(name, ingress_controller, port + 1), name
        assert net.ingress(name, monitoring, port), name
    for worker in workers:
        assert net.ingress(worker, monitoring, WORKER_METRICS_PORT), worker
        assert not net.ingress(worker, ingress_controller, WORKER_METRICS_PORT), worker
    assert not net.ingress("booking", monitoring, WORKER_METRICS_PORT)

    # booking -> policy, and no other service to another.
    assert net.ingress("policy", net.pods["booking"], 8002)
    assert net.egress("booking", net.pods["policy"], 8002)
    assert not net.ingress("policy", net.pods["webhooks"], 8002)
    assert not net.egress("webhooks", net.pods["policy"], 8002)
    assert not net.ingress("notifications", net.pods["booking"], 8004)
    assert not net.egress("booking", net.pods["notifications"], 8004)

    for name in net.pods:
        assert net.egress(name, None, 53, "UDP") and net.egress(name, None, 53), name
        assert net.egress(name, None, 3306) and net.egress(name, None, 6379), name
        assert net.egress(name, monitoring, 4317), name
        assert not net.egress(name, None, 22), name
    calls_out = {"booking", "booking-worker", "webhooks-worker", "notifications-worker"}
    for name in net.pods:
        assert net.egress(name, None, 443) is (name in calls_out), name
        for smtp in (25, 465, 587):
            assert net.egress(name, None, smtp) is (name == "notifications-worker"), name


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per stage, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


def dockerignored(path: str) -> bool:
    """.dockerignore's verdict on a path of the build context (the last matching line wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern = line.removeprefix("!").strip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not line.startswith("!")
    return ignored


def test_the_dockerfile_builds_in_a_builder_stage_and_runs_as_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert ("COPY", "pyproject.toml README.md constraints.txt ./") in builder
    # The image installs the versions CI tested.
    assert any(i == "RUN" and "pip install -c constraints.txt ." in a for i, a in builder)
    assert any(i == "RUN" and "pip install" in a and "-e ." in a for i, a in builder)
    assert final[0][1].endswith(" AS runtime")
    # Both stages start from a slim Python 3.11.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\S*$", dockerfile, re.MULTILINE)

    users = [a for i, a in final if i == "USER"]
    assert users == ["10001:10001"]
    assert final[-1][0] == "CMD" and [i for i, _ in final].index("USER") < len(final) - 1
    cmd = yaml.safe_load(final[-1][1])
    assert cmd[:3] == ["uvicorn", "--factory", "services.booking.app:create"]
    assert f"--timeout-keep-alive={KEEP_ALIVE_S}" in cmd
    assert_code_exists(cmd[2])
    envs = " ".join(a for i, a in final if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in envs and "PATH=/opt/venv/bin:$PATH" in envs
    copies = [a for i, a in final if i == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv", "--from=builder /app /app"]
    runs = " ".join(a for i, a in final if i == "RUN")
    for compiler in ("apt-get install", "build-essential", "gcc"):
        assert compiler not in runs
    assert "useradd --system --uid 10001" in runs

    # What the builder copies from the context passes .dockerignore; local state does not.
    sources = [a.split()[:-1] for i, a in builder if i == "COPY" and not a.startswith("--")]
    for path in (p for group in sources for p in group):
        assert (ROOT / path).exists() and not dockerignored(path), path
    for path in (".env", ".venv", ".git", "var", "tests", "shared/__pycache__/x.pyc"):
        assert dockerignored(path), path


# --- docker-compose.yml ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def env_file_keys(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_compose_runs_the_full_stack_from_one_image() -> None:
    services = compose()["services"]
    apps = set(APIS) | {f"{w}-worker" for w in WORKERS}
    assert set(services) == {"mariadb", "redis", "migrate"} | apps

    assert services["mariadb"]["image"] == "mariadb:10.11"
    assert services["mariadb"]["healthcheck"]["test"] == [
        "CMD", "healthcheck.sh", "--connect", "--innodb_initialized"
    ]  # fmt: skip
    assert services["redis"]["image"] == "redis:7"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]

    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["command"][:2] == ["sh", "-c"]
    assert migrate["command"][2].startswith("appointments migrate &&")
    assert migrate["depends_on"] == {"mariadb": {"condition": "service_healthy"}}

    images = {services[name]["image"] for name in apps | {"migrate"}}
    assert images == {"appointments:local"}
    for name in apps:
        service = services[name]
        assert service["build"] == "."
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
        for dependency, condition in (
            ("mariadb", "service_healthy"),
            ("redis", "service_healthy"),
            ("migrate", "service_completed_successfully"),
        ):
            assert service["depends_on"][dependency] == {"condition": condition}, name
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("mysql+asyncmy://appointments:")
        assert "@mariadb:3306/appointments" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["POLICY_SERVICE_URL"] == "http://policy:8002"

    for name, port in APIS.items():
        service = services[name]
        command = service["command"]
        argv = shlex.split(command[2].split("exec ", 1)[1]) if command[0] == "sh" else command
        app = f"services.{name}.app:create"
        assert argv == [
            "uvicorn",
            "--factory",
            app,
            "--host=0.0.0.0",
            f"--port={port}",
            f"--timeout-keep-alive={KEEP_ALIVE_S}",
        ]
        assert_code_exists(argv[2])
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert f"http://127.0.0.1:{port}/health/ready" in service["healthcheck"]["test"][-1]
    for worker in WORKERS:
        service = services[f"{worker}-worker"]
        assert service["command"] == [
            "python", "-m", "shared.jobs.worker_main", f"services.{worker}.worker.WorkerSettings"
        ]  # fmt: skip
        # Longer than the drain (25 s), as in the Kubernetes manifests.
        grace = 60 if worker == "notifications" else 30
        assert service["stop_grace_period"] == f"{grace}s"
        assert service["healthcheck"]["test"] == [
            "CMD", "arq", "--check", f"services.{worker}.worker.WorkerSettings"
        ]  # fmt: skip
    # booking reads the service key the migrate step issued.
    assert "var/service-api-key" in migrate["command"][2]
    assert "SERVICE_API_KEY=" in services["booking"]["command"][2]


def test_compose_settings_come_from_env_example_without_secrets() -> None:
    booking = compose()["services"]["booking"]
    assert booking["env_file"] == [
        {"path": ".env.example", "required": True},
        {"path": ".env", "required": False},
    ]
    settings = env_file_keys(ROOT / ".env.example")
    assert set(settings) <= SETTINGS_ENV, set(settings) - SETTINGS_ENV
    assert settings["ENVIRONMENT"] == "development"
    assert settings["SECRET_KEY"] == "dev-only-change-me"
    secret_names = set(secret_example()) - {"SECRET_KEY"}
    assert not set(settings) & secret_names, "secrets belong in .env, not in .env.example"
