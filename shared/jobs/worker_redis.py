"""The workers' Redis client: created without a ping, with a socket timeout (ADR 0018)."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings

from shared.config import Settings


def lazy_pool(
    redis_settings: RedisSettings, settings: Settings, *, queue: str, **options: Any
) -> ArqRedis:
    """ARQ's client without `create_pool`'s ping and its five retries (a worker must start
    while Redis is down), and with a socket timeout (ARQ sets a connect timeout only: a
    partitioned Redis would otherwise hang a poll for good)."""
    rs = redis_settings
    if rs.sentinel:  # not used here; ARQ's own pool keeps supporting it
        raise ValueError("Redis Sentinel is not supported by shared.jobs.worker_main")
    return ArqRedis(
        host=rs.host,
        port=rs.port,
        unix_socket_path=rs.unix_socket_path,
        db=rs.database,
        username=rs.username,
        password=rs.password,
        ssl=rs.ssl,
        ssl_keyfile=rs.ssl_keyfile,
        ssl_certfile=rs.ssl_certfile,
        ssl_cert_reqs=rs.ssl_cert_reqs,
        ssl_ca_certs=rs.ssl_ca_certs,
        ssl_ca_data=rs.ssl_ca_data,
        ssl_check_hostname=rs.ssl_check_hostname,
        socket_connect_timeout=rs.conn_timeout,
        socket_timeout=settings.redis_timeout_s,
        max_connections=rs.max_connections,
        encoding="utf8",
        default_queue_name=queue,
        **options,
    )
