"""`appointments info`, and the box `appointments run` prints once every service is ready: the
kept demo API key, each service's API docs, the ops page and the mail page (the development
outbox, unless the operator configured real delivery).

Reads only files and the configured ports, so it works while `run` runs (every service
"ready") and when it does not ("not running").
"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import Settings
from tools.children import (
    HOST,
    MAIL_CHILD,
    mail_catcher,
    mail_not_started_because,
    service_ports,
)
from tools.key_store import read_key, state_dir

DEMO_KEY_GLOB = "demo-key.*"
MAIL_NOT_STARTED = "mail: not started"


@dataclass(frozen=True)
class KeptKey:
    company_id: str
    key: str
    path: Path


@dataclass(frozen=True)
class ServiceDocs:
    name: str
    base_url: str
    state: str  # "ready", "not ready (HTTP 503)", "not running" or "" (not asked)

    @property
    def docs(self) -> str:
        return f"{self.base_url}/docs"

    @property
    def redoc(self) -> str:
        return f"{self.base_url}/redoc"


@dataclass(frozen=True)
class Info:
    key_dir: Path
    keys: list[KeptKey]
    services: list[ServiceDocs]
    ops_url: str
    mail_url: str | None = None  # the mail page; None: no catcher (see mail_note)
    mail_state: str = ""  # like ServiceDocs.state
    mail_note: str = ""  # why there is no catcher


def kept_demo_keys(directory: Path) -> list[KeptKey]:
    """The demo admin keys kept by `seed-demo` in `directory`, newest first."""
    files = sorted(directory.glob(DEMO_KEY_GLOB), key=_mtime, reverse=True)
    keys = []
    for path in files:
        key = read_key(path)
        if key is not None:
            keys.append(KeptKey(path.name.removeprefix("demo-key."), key, path))
    return keys


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def service_state(base_url: str, timeout_s: float = 0.5, path: str = "/health/ready") -> str:
    """How GET {base_url}{path} answers: "ready", "not ready (HTTP n)", "not running"."""
    # No proxies: loopback calls, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}{path}", timeout=timeout_s) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        return "not running"
    return "ready" if status == 200 else f"not ready (HTTP {status})"


def gather(settings: Settings, key_dir: Path, *, states: dict[str, str] | None = None) -> Info:
    """What to show; `states` by service name (None: ask each service now)."""
    services = []
    for name, port in service_ports(settings).items():
        base_url = f"http://{HOST}:{port}"
        state = service_state(base_url) if states is None else states.get(name, "")
        services.append(ServiceDocs(name, base_url, state))
    ops_url = f"{services[0].base_url}/ops"
    keys = kept_demo_keys(key_dir)
    catcher = mail_catcher(settings, token="")
    if catcher is None:
        note = mail_not_started_because(settings) or ""
        return Info(key_dir, keys, services, ops_url, mail_note=note)
    if states is None:
        mail_state = service_state(catcher.url, path="/health")
    else:
        mail_state = states.get(MAIL_CHILD, "")
    return Info(key_dir, keys, services, ops_url, f"{catcher.url}/", mail_state)


def info_lines(info: Info) -> list[str]:
    """The box's lines, without the frame."""
    lines: list[str] = []
    for kept in info.keys:
        lines.append(f"API key (admin, company {kept.company_id}): {kept.key}")
    if info.keys:
        booking = info.services[0].base_url
        lines.append(
            f'  curl -H "Authorization: Bearer {info.keys[0].key}" {booking}/v1/admin/branches'
        )
    else:
        lines.append(f"API key: none kept in {info.key_dir}/ (run `appointments seed-demo`)")
    lines.append("API docs (Swagger UI, ReDoc):")
    for service in info.services:
        state = f"  {service.state}" if service.state and service.state != "ready" else ""
        lines.append(f"  {service.name:<14} {service.docs}  {service.redoc}{state}")
    lines.append(f"ops page: {info.ops_url} (sign in with the API key)")
    if info.mail_url:
        state = f"  {info.mail_state}" if info.mail_state and info.mail_state != "ready" else ""
        lines.append(f"mail: {info.mail_url}{state}")
    else:
        lines.append(
            f"{MAIL_NOT_STARTED} ({info.mail_note})" if info.mail_note else MAIL_NOT_STARTED
        )
    return lines


def boxed(lines: list[str]) -> str:
    """`lines` in an ASCII frame (readable in any terminal and log file)."""
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line:<{width}} |" for line in lines), rule])


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    key_dir: Path = args.state_dir or state_dir(settings)
    info = gather(settings, key_dir)
    lines = info_lines(info)
    running = [s for s in info.services if s.state == "ready"]
    if not running:
        lines.append("not running: start everything with `make run` (or `appointments run`)")
    print(boxed(lines), flush=True)
    return 0


def add_command(commands: Any) -> None:  # argparse's _SubParsersAction (private type)
    """Register `appointments info` on the CLI's subcommands."""
    parser = commands.add_parser(
        "info",
        help="print the API key, the API docs URLs, the ops page and the mail page",
        description="Print the demo API key kept by `seed-demo`, each service's /docs and "
        "/redoc, the ops page and the mail page (ports from BOOKING_PORT, ...), and whether "
        "each service answers. Works whether or not `appointments run` is running.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the keys are kept (default: beside the SQLite database, else ./var)",
    )
    parser.set_defaults(handler=cmd_info)
