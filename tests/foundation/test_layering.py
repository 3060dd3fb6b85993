"""The layering contracts of `make lint` (import-linter, `[tool.importlinter]` in pyproject.toml)
hold on the real tree and bite on a deliberate violation.

The violations are made in a copy of `shared`, `services` and `tools` (the .py files only) in
tmp_path, checked with the project's own contracts (pyproject.toml copied beside it), so the real
tree is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
INDEPENDENCE = "services do not import each other"
BOTTOM_LAYER = "shared is the bottom layer: it never imports a service"
TOP_LAYER = "tools are the top layer: neither shared nor a service imports them"
PURE = "pure modules import no database, HTTP or Redis module"
ROUTERS = "routers import services and schemas, never SQL"
CONTRACTS = (INDEPENDENCE, BOTTOM_LAYER, TOP_LAYER, PURE, ROUTERS)


def _lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with `config`, importing the packages found under `root` first."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache", "--no-logo"],
        cwd=root,
        # Wide enough that no reported import is wrapped over two lines.
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy_tree(into: Path) -> Path:
    """`shared`, `services` and `tools` (.py files only) and the contracts, copied under `into`."""
    for package in ("shared", "services", "tools"):
        shutil.copytree(
            ROOT / package,
            into / package,
            ignore=lambda folder, names: [
                name
                for name in names
                if name == "__pycache__"
                or (not name.endswith(".py") and not (Path(folder) / name).is_dir())
            ],
        )
    config = into / "layering.toml"
    shutil.copyfile(ROOT / "pyproject.toml", config)
    return config


def test_the_real_tree_keeps_every_contract() -> None:
    result = _lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in CONTRACTS:  # no import of any of them is ignored
        assert f"{contract} KEPT\n" in result.stdout
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_a_service_importing_another_service_fails_the_lint(tmp_path: Path) -> None:
    config = _copy_tree(tmp_path)
    copied = _lint_imports(tmp_path, config)
    assert copied.returncode == 0, copied.stdout + copied.stderr  # the copy alone passes
    scratch = tmp_path / "services" / "webhooks" / "scratch_violation.py"
    scratch.write_text("from services.booking.appointments import context  # noqa: F401\n")

    result = _lint_imports(tmp_path, config)

    assert result.returncode != 0
    assert f"{INDEPENDENCE} BROKEN" in result.stdout
    assert f"{BOTTOM_LAYER} KEPT" in result.stdout
    assert "services.webhooks.scratch_violation -> services.booking.appointments.context" in (
        result.stdout
    )


def test_shared_importing_a_service_fails_the_lint(tmp_path: Path) -> None:
    config = _copy_tree(tmp_path)
    scratch = tmp_path / "shared" / "appointments" / "scratch_violation.py"
    scratch.write_text("import services.booking.appointments.booking  # noqa: F401\n")

    result = _lint_imports(tmp_path, config)

    assert result.returncode != 0
    assert f"{BOTTOM_LAYER} BROKEN" in result.stdout
    assert "shared.appointments.scratch_violation -> services.booking.appointments.booking" in (
        result.stdout
    )


def test_shared_or_a_service_importing_the_tools_fails_the_lint(tmp_path: Path) -> None:
    config = _copy_tree(tmp_path)
    (tmp_path / "shared" / "scratch_violation.py").write_text(
        "from tools.runner import child_commands  # noqa: F401\n"
    )
    (tmp_path / "services" / "policy" / "scratch_violation.py").write_text(
        "import tools.cli  # noqa: F401\n"
    )

    result = _lint_imports(tmp_path, config)

    assert result.returncode != 0
    assert f"{TOP_LAYER} BROKEN" in result.stdout
    assert f"{BOTTOM_LAYER} KEPT" in result.stdout
    assert "shared.scratch_violation -> tools.runner" in result.stdout
    assert "services.policy.scratch_violation -> tools.cli" in result.stdout


def test_a_pure_module_importing_the_database_or_redis_fails_the_lint(tmp_path: Path) -> None:
    config = _copy_tree(tmp_path)
    speech = tmp_path / "shared" / "phones.py"
    speech.write_text(speech.read_text() + "\nimport redis.asyncio  # noqa: E402, F401\n")
    local_time = tmp_path / "shared" / "local_time.py"
    # Indirectly counts too: shared.db.engine imports sqlalchemy.
    local_time.write_text(local_time.read_text() + "\nimport shared.db.engine  # noqa: E402\n")

    result = _lint_imports(tmp_path, config)

    assert result.returncode != 0
    assert f"{PURE} BROKEN" in result.stdout
    assert "shared.phones is not allowed to import redis" in result.stdout
    assert "shared.local_time is not allowed to import sqlalchemy" in result.stdout
    assert f"{ROUTERS} KEPT" in result.stdout


def test_a_router_importing_sql_fails_the_lint(tmp_path: Path) -> None:
    config = _copy_tree(tmp_path)
    router = tmp_path / "services" / "booking" / "callbacks" / "api.py"
    router.write_text(router.read_text() + "\nfrom sqlalchemy import select  # noqa: E402, F401\n")
    policy = tmp_path / "services" / "policy" / "api.py"
    policy.write_text(policy.read_text() + "\nimport services.policy.queries  # noqa: E402\n")

    result = _lint_imports(tmp_path, config)

    assert result.returncode != 0
    assert f"{ROUTERS} BROKEN" in result.stdout
    assert "services.booking.callbacks.api is not allowed to import sqlalchemy" in result.stdout
    assert "services.policy.api is not allowed to import services.policy.queries" in (result.stdout)
