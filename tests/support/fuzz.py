"""Property-based fuzzing of the in-process apps against their own OpenAPI schema.

Schemathesis reads each app's schema and generates the requests (valid ones, and ones that
violate the schema on purpose); hypothesis drives the search, derandomized so a failure
replays. The requests are sent through `httpx.ASGITransport` to the very app objects the
`services` fixture started, on the fixture's event loop: the apps' database pools and Redis
clients are bound to that loop, and schemathesis' own ASGI client would run each app's lifespan
a second time on a loop of its own. Hypothesis runs in a worker thread and hands each request
to the loop (`asyncio.run_coroutine_threadsafe`), so nothing is ever awaited on a foreign loop.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

PROBLEM = "application/problem+json"
# Routes that are not JSON APIs (Prometheus text, the HTML docs); nothing else is excluded.
NOT_JSON_APIS = ("/metrics", "/docs")


def problem_violation(response: httpx.Response) -> str | None:
    """Why `response` breaks guarantee 5 (a 5xx, or a 4xx that does not say why), or None."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}: {response.text[:2000]}"
    if status < 400:
        return None
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type != PROBLEM:
        return f"{status} is {content_type or 'untyped'}, not {PROBLEM}: {response.text[:500]}"
    try:
        body = response.json()
    except ValueError:
        return f"{status} problem body is not JSON: {response.text[:500]}"
    if not isinstance(body, dict):
        return f"{status} problem body is not an object: {response.text[:500]}"
    if not isinstance(body.get("code"), str) or not body["code"]:
        return f"{status} problem without a `code`: {body}"
    if body.get("status") != status:
        return f"{status} problem with `status` {body.get('status')!r}: {body}"
    if not isinstance(body.get("detail"), str) or not body["detail"].strip():
        return f"{status} problem without a `detail` saying why: {body}"
    return None


def assert_no_server_error(response: httpx.Response, what: str = "") -> None:
    """No 5xx; every 4xx is problem+json with `code`, `status` and a `detail`."""
    __tracebackhide__ = True
    violation = problem_violation(response)
    request = response.request
    assert violation is None, f"{what} {request.method} {str(request.url)[:300]}: {violation}"


def load_schema(app: Any) -> Any:
    """The app's own OpenAPI document, as a schemathesis schema."""
    return schemathesis.openapi.from_dict(app.openapi())


def operations(schema: Any) -> list[Any]:
    """Every operation of the schema except the non-JSON routes; deletions last (they remove
    the entities whose ids the other operations are given)."""
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(NOT_JSON_APIS):
            found.append(operation)
    return sorted(found, key=lambda operation: operation.method.upper() == "DELETE")


def _latin1(value: object) -> bytes:
    text = value if isinstance(value, str) else str(value)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def wire_request(kwargs: dict[str, Any]) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    """Serialize schemathesis' transport kwargs exactly as `requests` would put them on the wire."""
    allowed = ("method", "url", "headers", "params", "data", "json", "cookies", "files")
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in allowed}).prepare()
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [
        (_latin1(name), _latin1(value))
        for name, value in prepared.headers.items()
        if name.lower() != "content-length"
    ]
    assert prepared.method is not None and prepared.url is not None
    return prepared.method, prepared.url, headers, body


@dataclass
class Fuzzer:
    """Fuzz every operation of one app; collects every violation instead of stopping early."""

    name: str
    app: Any
    client: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    # A fresh admin key per operation (so the per-key rate limit never refuses the fuzzer).
    admin_key: Callable[[], Coroutine[Any, Any, str]]
    # Other Authorization values (none, garbage, a key lacking scopes), drawn now and then.
    other_credentials: Sequence[str | None]
    # Real ids of the caller's company by field name (`staff_id`, ...) and by admin resource
    # (`staff`, `working-hours`, ...), planted into id fields of valid requests.
    known_ids: Mapping[str, Sequence[str]]
    # Paths that authenticate by signature, not key: a generated (never valid) one gets 401.
    signed_paths: frozenset[str] = frozenset()
    examples: int = 12
    failures: list[str] = field(default_factory=list)
    requests_sent: int = 0

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def send(self, case: Any, authorization: str | None) -> tuple[str, httpx.Response | str]:
        kwargs = case.as_transport_kwargs(base_url=str(self.client.base_url).rstrip("/"))
        headers = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"}
        if authorization is not None:
            headers["Authorization"] = authorization
        kwargs["headers"] = headers
        method, url, raw_headers, body = wire_request(kwargs)
        label = f"{self.name} {method} {url[:300]} body={body[:300]!r}"
        self.requests_sent += 1
        try:
            response = self.run(self.client.request(method, url, headers=raw_headers, content=body))
        except Exception:
            return label, "unhandled exception:\n" + traceback.format_exc(limit=-12)
        return label, response

    def check(self, case: Any, authorization: str | None, mode: GenerationMode) -> None:
        label, outcome = self.send(case, authorization)
        violation = outcome if isinstance(outcome, str) else problem_violation(outcome)
        assert violation is None, f"{label}\n  -> {violation}"
        assert not isinstance(outcome, str)
        if mode is GenerationMode.POSITIVE and case.operation.path in self.signed_paths:
            assert outcome.status_code == 401, f"{label}\n  -> unsigned: {outcome.text[:500]}"
        if 200 <= outcome.status_code < 300:
            # A success must also be what the schema promises.
            case.validate_response(outcome, checks=[response_schema_conformance])

    def id_pool(self, path: str, name: str) -> Sequence[str]:
        """Real ids that fit a parameter: `/v1/admin/staff/{id}` -> staff ids, `to` -> staff."""
        if name == "id":
            return self.known_ids.get(path.rstrip("/").split("/")[-2], ())
        return self.known_ids.get("staff_id" if name == "to" else name, ())

    def plant_ids(self, case: Any, draw: Callable[[Any], Any]) -> None:
        """Replace id-like path parameters and body fields with real ids, most of the time."""
        targets: list[tuple[dict[str, Any], str]] = [
            (case.path_parameters, name) for name in (case.path_parameters or {})
        ]
        if isinstance(case.body, dict):
            targets += [(case.body, key) for key in case.body]
        for container, name in targets:
            pool = self.id_pool(case.operation.path, name)
            if pool:
                chosen = draw(st.sampled_from([None, *pool]))
                if chosen is not None:
                    container[name] = chosen

    def fuzz(self, operation: Any, mode: GenerationMode) -> None:
        strategy = operation.as_strategy(generation_mode=mode)
        admin = f"Bearer {self.run(self.admin_key())}"
        weights = [admin] * (4 * len(self.other_credentials)) + list(self.other_credentials)

        @hsettings(
            max_examples=self.examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=strategy, data=st.data(), authorization=st.sampled_from(weights))
        def examples(case: Any, data: st.DataObject, authorization: str | None) -> None:
            if mode is GenerationMode.POSITIVE:
                self.plant_ids(case, data.draw)
            self.check(case, authorization, mode)

        try:
            examples()
        except Unsatisfiable:
            # Nothing of this operation can violate its schema (no parameters, no body).
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:
            self.failures.append(f"[{mode.value}] {operation.label}: {error}")

    def fuzz_all(self, modes: Sequence[GenerationMode] = tuple(GenerationMode)) -> list[str]:
        for operation in operations(load_schema(self.app)):
            for mode in modes:
                self.fuzz(operation, mode)
        return self.failures
