"""The service table of `appointments run`: each child's argv, ports and environment."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from shared.config import Settings

HOST = "127.0.0.1"
# The workers' drain under `run` (WORKER_DRAIN_TIMEOUT_S, 25 s in Kubernetes) ends before
# STOP_TIMEOUT_S, so a stop lets a worker cancel and record what it has left, not a SIGKILL.
RUN_DRAIN_TIMEOUT_S = 8.0
# Longer than any client's idle-connection expiry (httpx: 5 s, load balancers: 60 s): with
# uvicorn's default of 5 s a client reusing an idle connection races the server closing it
# and reads a reset instead of an answer.
KEEP_ALIVE_S = 75

# (service, ASGI app factory); the policy service has no worker.
SERVICES = (
    ("booking", "services.booking.app:create"),
    ("policy", "services.policy.app:create"),
    ("webhooks", "services.webhooks.app:create"),
    ("notifications", "services.notifications.app:create"),
)
WORKERS = ("booking", "webhooks", "notifications")
MAIL_CHILD = "mail"  # the development outbox (tools/dev_outbox.py)
# Set by the operator (environment or .env), any of these means real delivery is configured:
# then `run` starts no mail catcher and leaves the messaging settings alone.
OPERATOR_MESSAGING = ("smtp_host", "smtp_port", "sms_provider_url", "whatsapp_provider_url")


@dataclass(frozen=True)
class MailCatcher:
    """The development outbox `run` starts: its SMTP port, its web port, the gateway token."""

    smtp_port: int
    http_port: int
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def ports(self) -> dict[str, int]:
        return {"mail (SMTP)": self.smtp_port, "mail (page)": self.http_port}


def operator_messaging(settings: Settings) -> list[str]:
    """The messaging settings the operator configured, by variable name (SMTP_HOST, ...)."""
    return [name.upper() for name in OPERATOR_MESSAGING if name in settings.model_fields_set]


def mail_not_started_because(settings: Settings) -> str | None:
    """Why `run` starts no mail catcher with these settings; None: it starts one."""
    configured = operator_messaging(settings)
    if configured:
        return f"{', '.join(configured)} configured: messages go to the real relay and gateways"
    if settings.environment == "production":
        return "production: configure SMTP_HOST, SMS_PROVIDER_URL and WHATSAPP_PROVIDER_URL"
    return None


def mail_catcher(settings: Settings, token: str | None = None) -> MailCatcher | None:
    """The catcher `run` starts (a fresh random gateway token unless given), or None."""
    if mail_not_started_because(settings) is not None:
        return None
    return MailCatcher(
        settings.dev_outbox_smtp_port,
        settings.dev_outbox_http_port,
        secrets.token_urlsafe(24) if token is None else token,
    )


def service_ports(settings: Settings) -> dict[str, int]:
    return {
        "booking": settings.booking_port,
        "policy": settings.policy_port,
        "webhooks": settings.webhooks_port,
        "notifications": settings.notifications_port,
    }


def docs_urls(settings: Settings) -> dict[str, str]:
    return {name: f"http://{HOST}:{port}/docs" for name, port in service_ports(settings).items()}


def child_commands(settings: Settings, catcher: MailCatcher | None = None) -> dict[str, list[str]]:
    """The argv of every child, by name (`booking`, ..., `booking-worker`, ..., and `mail`
    with a catcher)."""
    ports = service_ports(settings)
    quiet = not settings.log_json
    commands = {name: _uvicorn(factory, ports[name], quiet) for name, factory in SERVICES}
    for name in WORKERS:
        # Our worker entry point: outlives Redis/database outages, drains on SIGTERM (ADR 0018).
        commands[f"{name}-worker"] = [
            sys.executable,
            "-m",
            "shared.jobs.worker_main",
            f"services.{name}.worker.WorkerSettings",
        ]
    if catcher is not None:
        commands[MAIL_CHILD] = [
            sys.executable,
            "-m",
            "tools.dev_outbox",
            "--smtp-port",
            str(catcher.smtp_port),
            "--http-port",
            str(catcher.http_port),
        ]
    return commands


def _uvicorn(factory: str, port: int, quiet: bool) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", "--factory", factory]
    argv += ["--host", HOST, "--port", str(port)]
    # Below STOP_TIMEOUT_S, so open connections cannot turn a stop into a SIGKILL.
    argv += ["--timeout-graceful-shutdown", "5"]
    argv += ["--timeout-keep-alive", str(KEEP_ALIVE_S)]
    if quiet:
        # Console logs (development): no line per request, and none of uvicorn's start/stop
        # lines (the supervisor announces readiness); errors stay.
        argv += ["--no-access-log", "--log-level", "warning"]
    return argv


def worker_metrics_ports(settings: Settings) -> dict[str, int]:
    """Each worker's metrics port, by child name: WORKER_METRICS_PORT + 1, + 2, + 3 (all 0
    when it is 0), so the three workers on one machine do not compete for one port."""
    base = settings.worker_metrics_port
    return {
        f"{name}-worker": base + offset if base and base + offset <= 65535 else 0
        for offset, name in enumerate(WORKERS, start=1)
    }


def child_overrides(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-child additions to the shared environment: the workers' metrics ports, on the
    loopback like the services."""
    return {
        name: {"WORKER_METRICS_PORT": str(port), "WORKER_METRICS_HOST": HOST}
        for name, port in worker_metrics_ports(settings).items()
    }


def child_env(
    settings: Settings, redis_url: str, catcher: MailCatcher | None = None
) -> dict[str, str]:
    """The environment every child shares. With a catcher, e-mail, SMS and WhatsApp go to it
    and the services learn where it is (DEV_OUTBOX_URL, for the ops page)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = settings.database_url
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    default_policy_url = Settings.model_fields["policy_service_url"].default
    if "POLICY_SERVICE_URL" not in os.environ and settings.policy_service_url == default_policy_url:
        # Follow a moved policy port (POLICY_PORT) unless the URL was configured explicitly.
        env["POLICY_SERVICE_URL"] = f"http://{HOST}:{settings.policy_port}"
    drain_s = min(settings.worker_drain_timeout_s, RUN_DRAIN_TIMEOUT_S)
    env["WORKER_DRAIN_TIMEOUT_S"] = f"{drain_s:g}"
    if catcher is not None:
        env.update(
            SMTP_HOST=HOST,
            SMTP_PORT=str(catcher.smtp_port),
            SMTP_SECURITY="none",
            SMS_PROVIDER_URL=f"{catcher.url}/gateway/sms",
            SMS_PROVIDER_TOKEN=catcher.token,
            WHATSAPP_PROVIDER_URL=f"{catcher.url}/gateway/whatsapp",
            WHATSAPP_PROVIDER_TOKEN=catcher.token,
            DEV_OUTBOX_URL=catcher.url,
            DEV_OUTBOX_TOKEN=catcher.token,
        )
    return env


def busy_ports(ports: Mapping[str, int]) -> list[str]:
    """Human-readable problems with the ports: taken by another process, or given twice."""
    problems = []
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            problems.append(f"{name} and {seen[port]} both want port {port}")
            continue
        seen[port] = name
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                problems.append(f"{name}: port {port} is not free ({exc.strerror})")
    return problems
