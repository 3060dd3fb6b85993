"""Settings for every service, read from the environment (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/appointments.db"
DEFAULT_SECRET = "dev-insecure-secret-change-me"


class Settings(BaseSettings):
    """One settings class for all services; env names are the upper-case field names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "staging", "production"] = Field(
        default="development",
        validation_alias=AliasChoices("APP_ENV", "ENVIRONMENT", "environment"),
    )
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: str = DEFAULT_SECRET
    log_level: str = "INFO"
    # LOG_FORMAT "json" or "console" (one readable line per event); unset: LOG_JSON if set,
    # else console in development and JSON everywhere else. Resolved into `log_json`.
    log_format: Literal["json", "console"] | None = None
    log_json: bool = True

    booking_port: int = 8001
    policy_port: int = 8002
    webhooks_port: int = 8003
    notifications_port: int = 8004
    policy_service_url: str = "http://127.0.0.1:8002"
    calcom_base_url: str | None = None
    # Platform key with the "service" scope that services use to call each other.
    service_api_key: str | None = None
    # Platform-wide Retell API key (webhook badge); each company may also have its own.
    retell_api_key: str | None = None
    policy_timeout_s: float = Field(default=1.5, gt=0)
    auth_cache_ttl_s: float = Field(default=30.0, ge=0)
    # The lean handlers of the hottest routes (shared/web/lean.py, ADR 0009); off: FastAPI only.
    lean_routes: bool = True

    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    # MariaDB: a new connection (TCP + handshake) and the ping of a connection idle for a
    # while must succeed within this, else 503 database_unavailable (ADR 0019).
    db_connect_timeout_s: float = Field(default=2.0, gt=0)
    # MariaDB connections for the hot paths' autocommit statements (shared/db/raw_sql.py; 0: none).
    raw_pool_size: int = Field(default=10, ge=0)
    raw_timeout_s: float = Field(default=5.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=15000, ge=0)
    health_check_timeout_s: float = Field(default=2.0, gt=0)
    redis_timeout_s: float = Field(default=2.0, gt=0)
    # ARQ job timeout; a killed worker's job runs again after the longest timeout + 10 s.
    worker_job_timeout_s: int = Field(default=30, ge=1)
    # On SIGTERM/SIGINT a worker takes no new jobs and lets running ones finish for up to this
    # long before cancelling them (they run again elsewhere); below k8s' 30 s grace period.
    worker_drain_timeout_s: float = Field(default=25.0, ge=0)
    # Workers serve Prometheus metrics on this port (0: not at all);
    # see shared/jobs/worker_metrics.py.
    worker_metrics_port: int = Field(default=9100, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"
    # `appointments run` serves its child restart counter here, on 127.0.0.1 (0: not at all).
    supervisor_metrics_port: int = Field(default=9104, ge=0, le=65535)

    # Notification delivery channels. E-mail goes to one SMTP relay (smtp_security: "none",
    # "starttls" or "tls" = implicit TLS); SMS and WhatsApp go to an HTTP gateway speaking the
    # API in services/notifications/channels/http_provider.py, enabled only when its URL is set.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "Termine <noreply@localhost>"
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    sms_provider_url: str | None = None
    sms_provider_token: str | None = None
    whatsapp_provider_url: str | None = None
    whatsapp_provider_token: str | None = None
    messaging_timeout_s: float = Field(default=5.0, gt=0)
    # The development outbox `appointments run` starts (tools/dev_outbox.py) when no SMTP relay
    # or gateway is configured: SMTP and its mail page on 127.0.0.1. `dev_outbox_url` (set by
    # `run` for the services) is where the ops page reads the caught messages; None: not running.
    dev_outbox_smtp_port: int = Field(default=1025, ge=1, le=65535)
    dev_outbox_http_port: int = Field(default=8025, ge=1, le=65535)
    dev_outbox_url: str | None = None

    # OpenTelemetry traces (shared/observability/tracing.py): "none" records nothing;
    # "otlp" posts batches to OTLP_ENDPOINT, the collector's traces URL
    # (e.g. http://otel-collector:4318/v1/traces; unset: OTEL_EXPORTER_OTLP_* or localhost).
    tracing_exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str | None = None
    otlp_timeout_s: float = Field(default=5.0, gt=0)

    # Trust edges (issue 13). Requests whose body is larger are refused with 413 before any
    # parsing or authentication (shared/web/body_limit.py).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Tenant-settable outbound URLs (Cal.com base_url): https only, host on this list
    # (comma-separated; "*.example.com" admits subdomains). Private/loopback/link-local
    # addresses are refused at connect time unless ALLOW_PRIVATE_OUTBOUND_URLS (never in
    # production: refused at start-up).
    outbound_allowed_hosts: str = "api.cal.com"
    allow_private_outbound_urls: bool = False
    # Key revocation and scope changes reach every replica within this many seconds.
    auth_revocation_poll_s: float = Field(default=0.5, gt=0)
    # Secrets at rest: extra old keys (comma-separated) still accepted for decryption while
    # `appointments rotate-secrets` re-encrypts under SECRET_KEY.
    secret_key_fallbacks: str = ""
    # Data protection: raw webhook payloads, call transcripts and api call logs are deleted or
    # redacted after this many days.
    retention_days: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEFAULT_SECRET:
            raise ValueError("SECRET_KEY must be set in production")
        if self.environment == "production" and self.allow_private_outbound_urls:
            raise ValueError("ALLOW_PRIVATE_OUTBOUND_URLS must not be set in production")
        if self.log_format is not None:
            self.log_json = self.log_format == "json"
        elif "log_json" not in self.model_fields_set:
            self.log_json = self.environment != "development"
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return Settings()
