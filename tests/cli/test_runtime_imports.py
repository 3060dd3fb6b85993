"""`make run` installs the runtime dependencies only: every module it can load (services, shared,
tools, the development outbox included) imports without any package of the `[dev]` extras."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Import names of the [dev] distributions that differ from their distribution names.
IMPORT_NAMES = {
    "pytest-asyncio": "pytest_asyncio",
    "pytest-timeout": "pytest_timeout",
    "pytest-xdist": "xdist",
    "jsonschema-rs": "jsonschema_rs",
    "pyyaml": "yaml",
    "kubernetes-validate": "kubernetes_validate",
    "promql-parser": "promql_parser",
    "types-PyYAML": "yaml",
    "import-linter": "importlinter",
}

PROBE = """
import importlib, importlib.abc, pkgutil, sys
blocked = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"dev-only package imported: {name}")
        return None

sys.meta_path.insert(0, Refuse())
count = 0
for package in ("shared", "services", "tools"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
        count += 1
print(count)
"""


def dev_import_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["optional-dependencies"]["dev"]:
        dist = requirement.split(">")[0].split("=")[0].split("[")[0].strip()
        names.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    return names


def test_every_module_imports_without_the_dev_extras() -> None:
    blocked = dev_import_names()
    assert {"pytest", "playwright", "hypothesis", "mypy"} <= blocked
    assert "aiosmtpd" not in blocked  # the development outbox's SMTP server is runtime
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(sorted(blocked))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) > 250  # every module of the three packages was imported
