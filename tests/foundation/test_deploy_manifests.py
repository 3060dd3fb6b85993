"""The k8s base is well-formed and points at code that exists (full validation comes later)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base"


def _documents() -> list[dict]:
    docs = []
    for path in sorted(BASE.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_every_deployment_runs_real_code_with_probes_and_no_root() -> None:
    deployments = [d for d in _documents() if d["kind"] == "Deployment"]
    names = {d["metadata"]["name"] for d in deployments}
    assert names == {
        "booking", "policy", "webhooks", "notifications",
        "booking-worker", "webhooks-worker", "notifications-worker",
    }  # fmt: skip
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        container = spec["containers"][0]
        assert container["livenessProbe"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        target = next(arg for arg in container["command"] if arg.startswith("services."))
        module, _, attr = target.replace(":", ".").rpartition(".")
        assert hasattr(importlib.import_module(module), attr), target
