"""The real `appointments` executable, run in a subprocess against a temporary SQLite file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


def appointments_executable() -> str:
    """The console script of the interpreter running the tests (.venv/bin/appointments)."""
    beside = Path(sys.executable).with_name("appointments")
    if beside.exists():
        return str(beside)
    found = shutil.which("appointments")
    if found is None:
        pytest.fail("the `appointments` console script is not installed (pip install -e .)")
    return found


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """DATABASE_URL = a fresh SQLite file; REDIS_URL unset (`run` then embeds a Redis)."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'appointments.db'}"
    env["LOG_JSON"] = "true"
    return env


@pytest.fixture
def cli(tmp_path: Path, cli_env: dict[str, str]) -> Cli:
    """Run `appointments <args>` in tmp_path (./var lands there); returns the finished process."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [appointments_executable(), *args],
            cwd=tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
