"""The measured scenarios, each run against our service and against the baseline."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psutil

from services.booking.scheduling.availability import local_day_bounds
from tests.bench import load
from tests.bench.dataset import ZONE, BenchTenant, CompanyPolicy, SlotPlan, local_day, phone
from tests.bench.load import RunResult, expect_status
from tests.bench.report import Figure
from tests.booking.agent_support import signed


@dataclass(frozen=True)
class Counts:
    """Request counts; BENCH_SCALE multiplies them (warm-ups excluded)."""

    availability: int = 300
    booking_c4: int = 400
    booking_c20: int = 1000
    agent: int = 150
    policy_c4: int = 1000
    policy_c20: int = 3000
    effective: int = 1000
    webhook_c10: int = 2000
    webhook_c50: int = 3000

    def scaled(self, factor: float) -> Counts:
        return Counts(*(max(20, int(getattr(self, f.name) * factor)) for f in fields(self)))


@dataclass
class Bench:
    tenant: BenchTenant
    plan: SlotPlan
    booking_url: str
    policy_url: str
    baseline_url: str
    counts: Counts
    companies: tuple[CompanyPolicy, ...] = ()
    webhooks_url: str = ""
    runs: list[RunResult] = field(default_factory=list)
    next_phone: int = 0
    warmup_errors: int = 0
    # Server process by base URL, and the shared ones (client, mariadb, redis), for CPU/request.
    servers: dict[str, psutil.Process] = field(default_factory=dict)
    shared: dict[str, psutil.Process] = field(default_factory=dict)
    # A target's first URL -> all its processes' URLs; requests are spread over them in turn.
    replicas: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tag: str = ""  # appended to labels and figure names, e.g. " (2 procs)"
    configured: set[str] = field(default_factory=set)  # policies already PUT, by scenario

    def replicated(self, *, policy_url: str, baseline_url: str, processes: int) -> Bench:
        """This bench against other policy and baseline servers (several processes each),
        recording into the same list of runs."""
        return dataclasses.replace(
            self,
            policy_url=policy_url,
            baseline_url=baseline_url,
            servers={},
            replicas={},
            tag=f" ({processes} procs)",
        )

    def phones(self, count: int) -> list[str]:
        """`count` numbers never used before in this run: every booking is a new customer."""
        first = self.next_phone
        self.next_phone += count
        return [phone(first + i) for i in range(count)]

    async def run(
        self,
        url: str,
        label: str,
        make: load.MakeRequest,
        count: int,
        concurrency: int,
        check: load.Check,
        warmup: int = 0,
    ) -> RunResult:
        urls = self.replicas.get(url, (url,))
        servers = {
            "server" if n == 0 else f"server{n + 1}": self.servers[u]
            for n, u in enumerate(urls)
            if u in self.servers
        }
        processes = {**servers, **self.shared} if servers else {}
        result, failed = await load.warmed(
            urls, label, make, count, concurrency, check, warmup, processes
        )
        self.warmup_errors += failed
        self.runs.append(result)
        return result


def machine_note(base: RunResult) -> str:
    """The baseline run's CPU per request and the request rate that caps on this machine."""
    if not base.cpu_ms:
        return ""
    cpus = psutil.cpu_count() or 1
    own = {k: v for k, v in base.cpu_ms.items() if k != "other"}
    total = sum(own.values())
    parts = ", ".join(f"{k} {v:.1f}" for k, v in own.items())
    text = (
        f"Baseline CPU per request: {total:.1f} ms ({parts}), i.e. at most "
        f"{cpus * 1000 / total:.0f}/s on {cpus} CPUs"
        if total > 0
        else ""
    )
    other = base.cpu_ms.get("other", 0.0)
    if other >= 0.5:
        text += f"; other load on the machine meanwhile: {other:.1f} ms per request"
    return text + "." if text else ""


# -- 1. availability --------------------------------------------------------------------


async def availability(bench: Bench) -> list[Figure]:
    tenant, n = bench.tenant, bench.counts.availability
    first_days = [local_day(1 + i % 7) for i in range(n + 20)]  # the window starts on 7 dates

    def ours(i: int) -> load.Request:
        return availability_request(tenant, first_days[i])

    def has_slots(response: httpx.Response) -> str | None:
        if response.status_code != 200 or not response.json()["slots"]:
            return f"{response.status_code} {response.text[:300]}"
        return None

    label = "availability 7 days, 2,000 appts in branch"
    mine = await bench.run(bench.booking_url, label, ours, n, 1, has_slots, warmup=20)
    base = await bench.run(
        bench.baseline_url,
        f"{label} [baseline]",
        _bare_availability_request(bench),
        n,
        1,
        expect_status(200),
        warmup=20,
    )
    return [
        Figure(
            "1 availability 7 d: p95, sequential (≤ 2.5x baseline)",
            mine.p(95),
            base.p(95),
            2.5 * base.p(95),
            "ms",
        ),
        _server_cpu("1 availability: server CPU per request", mine, base, 3.0),
    ]


def availability_request(tenant: BenchTenant, first_day: date) -> load.Request:
    """`GET /v1/availability` of the busy branch (Mitte), 7 days from `first_day`."""
    params = {
        "service_id": tenant.salon.service_id,
        "branch_id": tenant.salon.branch_id,
        "date": first_day.isoformat(),
        "days": 7,
    }
    return "GET", "/v1/availability", {"params": params, "headers": tenant.salon.headers}


def _server_cpu(name: str, mine: RunResult, base: RunResult, target: float) -> Figure:
    """CPU time of the server process(es) per successful request (issue 17's CPU targets)."""
    return Figure(
        name, mine.cpu_ms.get("server", math.nan), base.cpu_ms.get("server"), target, "ms"
    )


# -- 2. booking ---------------------------------------------------------------------------


def booking_request(bench: Bench, count: int) -> load.MakeRequest:
    tenant = bench.tenant
    slots = bench.plan.take(count)
    phones = bench.phones(count)

    def make(i: int) -> load.Request:
        staff_id, start = slots[i]
        body = {
            "service_id": tenant.book_service_id,
            "staff_id": staff_id,
            "start": start.isoformat(),
            "customer": {"name": f"Kunde {i}", "phone": phones[i]},
        }
        return "POST", "/v1/appointments", {"json": body, "headers": tenant.salon.headers}

    return make


def _bare_booking_body(tenant: BenchTenant, staff_id: str, start: datetime) -> dict[str, Any]:
    return {
        "company_id": tenant.company_id,
        "branch_id": tenant.book_branch_id,
        "service_id": tenant.book_service_id,
        "staff_id": staff_id,
        "customer_id": tenant.customer_id,
        "start": start.astimezone(UTC).isoformat(),
        "minutes": 30,
    }


def _bare_booking_request(bench: Bench, count: int) -> load.MakeRequest:
    slots = bench.plan.take(count)

    def make(i: int) -> load.Request:
        return "POST", "/book", {"json": _bare_booking_body(bench.tenant, *slots[i])}

    return make


async def booking(bench: Bench) -> list[Figure]:
    c4, c20 = bench.counts.booking_c4, bench.counts.booking_c20
    created = expect_status(201)
    results: dict[str, RunResult] = {}
    for concurrency, count in ((4, c4), (20, c20)):
        warm = 2 * concurrency
        label = f"booking POST /v1/appointments c={concurrency}"
        results[f"ours{concurrency}"] = await bench.run(
            bench.booking_url,
            label,
            booking_request(bench, warm + count),
            count,
            concurrency,
            created,
            warmup=warm,
        )
        results[f"base{concurrency}"] = await bench.run(
            bench.baseline_url,
            f"{label} [baseline]",
            _bare_booking_request(bench, warm + count),
            count,
            concurrency,
            created,
            warmup=warm,
        )
    return [
        Figure(
            "2 booking: p95 at 4 clients (≤ 3x baseline)",
            results["ours4"].p(95),
            results["base4"].p(95),
            3 * results["base4"].p(95),
            "ms",
        ),
        Figure(
            "2 booking: throughput at 20 clients (≥ 0.40 of baseline)",
            results["ours20"].throughput,
            results["base20"].throughput,
            0.40 * results["base20"].throughput,
            "/s",
            higher_is_better=True,
        ),
        _server_cpu(
            "2 booking: server CPU per booking (4 clients)", results["ours4"], results["base4"], 3.5
        ),
        Figure(
            "2 booking: errors at 4 and 20 clients",
            float(len(results["ours4"].errors) + len(results["ours20"].errors)),
            float(len(results["base4"].errors) + len(results["base20"].errors)),
            0,
            "n",
        ),
    ]


# -- 4. agent function book_appointment ---------------------------------------------------


def _agent_request(bench: Bench, count: int, named_staff: bool) -> load.MakeRequest:
    tenant = bench.tenant
    slots = bench.plan.take(count, whole_groups=not named_staff)
    phones = bench.phones(count)
    names = dict(tenant.book_staff)

    def make(i: int) -> load.Request:
        staff_id, start = slots[i]
        local = start.astimezone(ZONE)
        args = {
            "service": "Bartpflege",
            "date": local.date().isoformat(),
            "time": local.strftime("%H:%M"),
            "customer_name": f"Anrufer {i}",
        }
        if named_staff:
            args["staff"] = names[staff_id]
        return agent_call(tenant, "book_appointment", args, phones[i])

    return make


def agent_call(
    tenant: BenchTenant, function: str, args: dict[str, Any], from_number: str
) -> load.Request:
    """A signed Retell function call of a new inbound call to Nord's number."""
    payload = {
        "call": {
            "call_id": f"call_{uuid.uuid4().hex[:16]}",
            "agent_id": "agent_bench",
            "call_type": "phone_call",
            "to_number": tenant.book_number,
            "from_number": from_number,
            "direction": "inbound",
        },
        "name": function,
        "args": args,
    }
    raw, headers = signed(payload)
    return "POST", f"/v1/retell/functions/{function}", {"content": raw, "headers": headers}


def _booked(response: httpx.Response) -> str | None:
    if response.status_code == 200 and response.json().get("status") == "booked":
        return None
    return f"{response.status_code} {response.text[:300]}"


async def agent(bench: Bench) -> list[Figure]:
    n, warm = bench.counts.agent, 10
    results = {}
    for named in (False, True):
        label = f"agent book_appointment c=1, {'named' if named else 'any'} staff"
        results[named] = await bench.run(
            bench.booking_url, label, _agent_request(bench, warm + n, named), n, 1, _booked, warm
        )
    slots = bench.plan.take(warm + n)

    def bare(i: int) -> load.Request:
        body = {
            "to_number": bench.tenant.book_number,
            **_bare_booking_body(bench.tenant, *slots[i]),
        }
        return "POST", "/agent_book", {"json": body}

    base = await bench.run(
        bench.baseline_url,
        "agent book_appointment c=1 [baseline]",
        bare,
        n,
        1,
        expect_status(201),
        warm,
    )
    checks = await bench.run(
        bench.booking_url,
        "agent check_availability c=1, 7 days in the busy branch",
        _agent_check_request(bench),
        n,
        1,
        _answered,
        warm,
    )
    availability_base = await bench.run(
        bench.baseline_url,
        "availability 7 days [baseline, for check_availability]",
        _bare_availability_request(bench),
        n,
        1,
        expect_status(200),
        warm,
    )
    any_p95, named_p95 = results[False].p(95), results[True].p(95)
    return [
        # The baseline column of this row is the named-staff p95: "any" may cost 1.3x "named".
        Figure(
            "4 agent book_appointment: p95, any staff (≤ 1.3x named)",
            any_p95,
            named_p95,
            1.3 * named_p95,
            "ms",
        ),
        Figure(
            "4 agent book_appointment: p95, named staff (≤ 4x baseline)",
            named_p95,
            base.p(95),
            4 * base.p(95),
            "ms",
        ),
        Figure(
            "4 agent check_availability 7 d: p95 (≤ 4x availability baseline)",
            checks.p(95),
            availability_base.p(95),
            4 * availability_base.p(95),
            "ms",
        ),
    ]


def _agent_check_request(bench: Bench) -> load.MakeRequest:
    """check_availability of the busy branch (Mitte, 2,000 appointments): a wanted time makes
    the agent search 7 days from the date, like `GET /v1/availability?days=7`."""
    tenant = bench.tenant

    def make(i: int) -> load.Request:
        args = {
            "service": "Herrenhaarschnitt",
            "branch": "Mitte",
            "date": local_day(1 + i % 7).isoformat(),
            "time": "10:00",
        }
        return agent_call(tenant, "check_availability", args, phone(900_000 + i))

    return make


def _bare_availability_request(bench: Bench) -> load.MakeRequest:
    tenant = bench.tenant

    def make(i: int) -> load.Request:
        first = local_day(1 + i % 7)
        lo, _ = local_day_bounds(first, ZONE)
        _, hi = local_day_bounds(first + timedelta(days=6), ZONE)
        params: list[tuple[str, str]] = [("staff_id", s) for s in tenant.busy_staff_ids]
        params += [("from", lo.isoformat()), ("to", hi.isoformat())]
        return "GET", "/availability", {"params": params}

    return make


def _answered(response: httpx.Response) -> str | None:
    """An answer with slots (the exact time or the alternatives around it)."""
    if response.status_code == 200 and response.json().get("slots"):
        return None
    return f"{response.status_code} {response.text[:300]}"


# -- 5. policy evaluate -------------------------------------------------------------------

POLICY = {
    "hours_before": 24,
    "allow_late": True,
    "fee_tiers": [
        {"min_hours_before": 0, "fee_percent": 50},
        {"min_hours_before": 12, "fee": 5},
        {"min_hours_before": 48, "fee": "0"},
    ],
    "max_per_window": 3,
}
_CACHE_LINE = re.compile(r"^cache_requests_total\{([^}]*)\}\s+([0-9.e+]+)$", re.MULTILINE)


async def cache_counts(bench: Bench) -> dict[str, float]:
    """cache_requests_total of the policy namespace by outcome, summed over replicas."""
    counts: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for url in bench.replicas.get(bench.policy_url, (bench.policy_url,)):
            text = (await client.get(f"{url}/metrics")).text
            for labels, value in _CACHE_LINE.findall(text):
                if 'cache="policy"' in labels:
                    outcome = re.search(r'outcome="([^"]+)"', labels)
                    if outcome:
                        counts[outcome[1]] = counts.get(outcome[1], 0.0) + float(value)
    return counts


def _hit_rate(before: dict[str, float], after: dict[str, float]) -> tuple[float, dict[str, float]]:
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}
    lookups = sum(delta.values())
    return (100 * delta.get("hit", 0.0) / lookups if lookups else float("nan")), delta


async def _configure_policies(bench: Bench) -> None:
    if "evaluate" in bench.configured:
        return
    bench.configured.add("evaluate")
    tenant = bench.tenant
    levels = (
        ("company", tenant.company_id, POLICY),
        ("branch", tenant.salon.branch_id, {"hours_before": 12}),
    )
    async with httpx.AsyncClient(base_url=bench.policy_url, timeout=10) as client:
        for level, entity, config in levels:
            response = await client.put(
                f"/v1/policies/{level}/{entity}/cancellation",
                json=config,
                headers=tenant.salon.headers,
            )
            if response.status_code not in (200, 201):
                raise RuntimeError(f"policy PUT failed: {response.status_code} {response.text}")


async def policy(bench: Bench) -> list[Figure]:
    tenant = bench.tenant
    await _configure_policies(bench)
    ids = tenant.evaluate_ids
    # As booking asks: the platform service key naming the tenant.
    headers = {"Authorization": f"Bearer {tenant.service_key}", "X-Company-ID": tenant.company_id}

    def ours(i: int) -> load.Request:
        body = {"appointment_id": ids[i % len(ids)], "action": "cancel"}
        return "POST", "/v1/policies/evaluate", {"json": body, "headers": headers}

    def bare(i: int) -> load.Request:
        body = {"appointment_id": ids[i % len(ids)], "company_id": tenant.company_id}
        return "POST", "/evaluate", {"content": json.dumps(body).encode()}

    ok = expect_status(200)
    label = f"policy POST /v1/policies/evaluate{bench.tag}"
    # Warm the cache for every chain (one per staff member of Mitte) before counting.
    warm = await bench.run(bench.policy_url, f"{label} (cache warm-up)", ours, 2 * len(ids), 4, ok)
    bench.runs.remove(warm)
    bench.warmup_errors += len(warm.errors)
    before = await cache_counts(bench)
    c4 = await bench.run(bench.policy_url, f"{label} c=4", ours, bench.counts.policy_c4, 4, ok, 40)
    c20 = await bench.run(
        bench.policy_url, f"{label} c=20", ours, bench.counts.policy_c20, 20, ok, 100
    )
    after = await cache_counts(bench)
    b4 = await bench.run(
        bench.baseline_url, f"{label} c=4 [baseline]", bare, bench.counts.policy_c4, 4, ok, 40
    )
    b20 = await bench.run(
        bench.baseline_url, f"{label} c=20 [baseline]", bare, bench.counts.policy_c20, 20, ok, 100
    )
    hit_rate, delta = _hit_rate(before, after)
    print(f"  policy cache lookups, c=4 and c=20 runs with warm-ups: {delta}", flush=True)
    tag = bench.tag
    return [
        Figure(
            f"5 policy evaluate: p95 at 4 clients{tag}",
            c4.p(95),
            b4.p(95),
            5,
            "ms",
            note=machine_note(b4),
        ),
        Figure(
            f"5 policy evaluate: throughput at 20 clients{tag}",
            c20.throughput,
            b20.throughput,
            1000,
            "/s",
            True,
            note=machine_note(b20),
        ),
        Figure(f"5 policy evaluate: cache hit rate{tag}", hit_rate, None, 95, "%", True),
    ]


# -- 6. effective configuration of 100 companies -------------------------------------------


def _company_policy(n: int) -> dict[str, Any]:
    return {**POLICY, "hours_before": 24 + n % 24, "max_per_window": 1 + n % 5}


async def _configure_companies(bench: Bench) -> None:
    """A company and a branch cancellation policy for each company, through the API."""
    if "effective" in bench.configured:
        return
    bench.configured.add("effective")
    async with httpx.AsyncClient(base_url=bench.policy_url, timeout=10) as client:
        for n, company in enumerate(bench.companies):
            levels = (
                ("company", company.company_id, _company_policy(n)),
                ("branch", company.branch_id, {"hours_before": 12, "allow_late": n % 2 == 0}),
            )
            for level, entity, config in levels:
                response = await client.put(
                    f"/v1/policies/{level}/{entity}/cancellation",
                    json=config,
                    headers=company.headers,
                )
                if response.status_code not in (200, 201):
                    raise RuntimeError(f"policy PUT failed: {response.status_code} {response.text}")


def _merged(response: httpx.Response) -> str | None:
    """200 with the branch's deadline over the company's, and the company's quota."""
    if response.status_code == 200:
        body = response.json()
        sources = body["sources"]
        if sources.get("hours_before") == "branch" and sources.get("max_per_window") == "company":
            return None
    return f"{response.status_code} {response.text[:300]}"


async def effective(bench: Bench) -> list[Figure]:
    """The seeds' production test 1: every company's effective cancellation config, warm.

    Sequential (one client), as the seeds' loop over the companies; each request names the
    company's branch, so the company and branch levels are merged. The baseline does what a
    warm read cannot avoid: the branch's SELECT (it must be the company's) and a Redis GET.
    """
    companies = bench.companies
    await _configure_companies(bench)

    def ours(i: int) -> load.Request:
        company = companies[i % len(companies)]
        params = {"policy_type": "cancellation", "branch_id": company.branch_id}
        return "GET", "/v1/policies/effective", {"params": params, "headers": company.headers}

    def bare(i: int) -> load.Request:
        company = companies[i % len(companies)]
        params = {"company_id": company.company_id, "branch_id": company.branch_id}
        return "GET", "/effective", {"params": params}

    n, warm = bench.counts.effective, len(companies)
    label = f"policy GET /v1/policies/effective, {len(companies)} cos{bench.tag}"
    # One pass over every company first: the cache is warm for all of them.
    warm_run = await bench.run(bench.policy_url, f"{label} (cache warm-up)", ours, warm, 1, _merged)
    bench.runs.remove(warm_run)
    bench.warmup_errors += len(warm_run.errors)
    before = await cache_counts(bench)
    mine = await bench.run(bench.policy_url, label, ours, n, 1, _merged)
    after = await cache_counts(bench)
    base = await bench.run(
        bench.baseline_url, f"{label} [baseline]", bare, n, 1, expect_status(200), warm
    )
    hit_rate, delta = _hit_rate(before, after)
    print(f"  policy cache lookups, measured run: {delta}", flush=True)
    tag = bench.tag
    return [
        Figure(
            f"6 effective config, {len(companies)} cos: p95 warm{tag}",
            mine.p(95),
            base.p(95),
            2,
            "ms",
            note=machine_note(base),
        ),
        Figure(f"6 effective config: cache hit rate{tag}", hit_rate, None, 95, "%", True),
    ]
