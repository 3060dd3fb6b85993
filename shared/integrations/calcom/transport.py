"""The transport under the Cal.com client: one HTTP call with the `cal-api-version` header,
through the company's circuit breaker, logged in `api_call_logs` (personal data redacted) and
counted in Prometheus; failures sorted into `CalcomTransient` (retry later) and `CalcomRejected`
(never retry). Error messages name the status or the kind of failure, never what the remote
side wrote (see `shared.integrations.calcom.errors`).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client import Counter, Histogram

from shared.integrations.calcom.call_log import CallLog
from shared.integrations.calcom.errors import (
    CalcomAddressRefused,
    CalcomError,
    CalcomRejected,
    CalcomTransient,
    CircuitOpen,
    answered,
)
from shared.integrations.calcom.models import JsonObject, error_message, json_object
from shared.integrations.calcom.retry import retry_after_from_headers
from shared.redis.circuit_breaker import CircuitBreaker
from shared.security.outbound import OutboundAddressRefused

REQUESTS = Counter(
    "calcom_requests_total",
    "Cal.com API calls by templated endpoint and status (HTTP code, timeout, "
    "transport_error, refused (outbound guard), cancelled, circuit_open).",
    ["endpoint", "status"],
)
DURATION = Histogram(
    "calcom_request_duration_seconds",
    "Cal.com API call latency by templated endpoint.",
    ["endpoint"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0),
)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, CalcomTransient)


class CalcomTransport:
    """One company's Cal.com account (its API key and base URL) and the calls made to it."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        company_id: str,
        http: httpx.AsyncClient,
        breaker: CircuitBreaker | None = None,
        call_log: CallLog | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.company_id = company_id
        self.http = http
        self.breaker = breaker
        self.call_log = call_log
        self.timeout_s = timeout_s

    async def _call(
        self,
        method: str,
        endpoint: str,
        path: str,
        api_version: str,
        *,
        params: dict[str, str] | None = None,
        json: JsonObject | None = None,
        timeout_s: float | None = None,
    ) -> JsonObject | None:
        """One HTTP call through the breaker; returns the JSON body of a 2xx answer."""
        if self.breaker is None:
            return await self._send(method, endpoint, path, api_version, params, json, timeout_s)
        try:
            async with self.breaker.guard(is_failure=_is_transient):
                return await self._send(
                    method, endpoint, path, api_version, params, json, timeout_s
                )
        except CircuitOpen:
            REQUESTS.labels(endpoint, "circuit_open").inc()
            raise

    async def _send(
        self,
        method: str,
        endpoint: str,
        path: str,
        api_version: str,
        params: dict[str, str] | None,
        json: JsonObject | None,
        timeout_s: float | None,
    ) -> JsonObject | None:
        headers = {
            "cal-api-version": api_version,
            "Authorization": f"Bearer {self.api_key}",
        }
        status: int | None = None
        body: JsonObject | None = None
        error: str | None = None
        label = "transport_error"
        started = time.perf_counter()
        try:
            response = await self.http.request(
                method,
                self.base_url + path,
                headers=headers,
                params=params,
                json=json,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )
            status = response.status_code
            label = str(status)
            body = json_object(response)
            _raise_for_status(response, body, endpoint)
            return body
        except httpx.TimeoutException as exc:
            label = "timeout"
            error = f"timeout: {type(exc).__name__}"
            raise CalcomTransient(f"{method} {endpoint} timed out") from exc
        except httpx.HTTPError as exc:
            error = _transport_reason(exc)
            raise CalcomTransient(f"{method} {endpoint}: {error}") from exc
        except OutboundAddressRefused as exc:
            label, error = "refused", exc.reason
            raise CalcomAddressRefused(exc.reason) from None
        except CalcomError as exc:
            error = exc.message
            raise
        except asyncio.CancelledError:
            label, error = "cancelled", "cancelled (job timeout or shutdown)"
            raise
        finally:
            elapsed = time.perf_counter() - started
            REQUESTS.labels(endpoint, label).inc()
            DURATION.labels(endpoint).observe(elapsed)
            if self.call_log is not None:
                await self.call_log.record(
                    company_id=self.company_id,
                    method=method,
                    endpoint=path,
                    status=status,
                    duration_ms=round(elapsed * 1000),
                    request=json,
                    response=body,
                    error=error,
                )


def _transport_reason(exc: httpx.HTTPError) -> str:
    """The kind of transport failure, without the exception's text (it names addresses)."""
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "name resolution" in text:
            return "name resolution failed"
        return "connection failed"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return "connection broken"
    return "transport error"


def _raise_for_status(response: httpx.Response, body: JsonObject | None, endpoint: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = answered(status)
    if status == 429:
        raise CalcomTransient(
            message, status=status, retry_after_s=retry_after_from_headers(response.headers)
        )
    if status >= 500:
        raise CalcomTransient(message, status=status)
    if status >= 400:
        remote = error_message(body, "")
        raise CalcomRejected(message, status=status, body=body, remote_detail=remote)
    raise CalcomError(f"unexpected HTTP {status} from {endpoint}", status=status)
