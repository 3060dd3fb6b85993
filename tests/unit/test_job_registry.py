"""The job registry and the worker base (issue 15): what ARQ sees of each service's worker."""

from __future__ import annotations

from arq.worker import Function

from services.booking.worker import WorkerSettings as BookingWorker
from services.notifications.worker import WorkerSettings as NotificationsWorker
from services.webhooks.worker import WorkerSettings as WebhooksWorker
from shared.config import get_settings
from shared.jobs.context import JobContext
from shared.jobs.queue import BOOKING_QUEUE, NOTIFY_QUEUE, WEBHOOKS_QUEUE
from shared.jobs.tasks import TaskRegistry
from shared.jobs.worker import MAX_TRIES, ServiceWorker


def _names(worker: type[ServiceWorker]) -> list[str]:
    return [f.name if isinstance(f, Function) else f.__qualname__ for f in worker.functions]


# Module level, as jobs are: a job's name is its function's qualified name.
async def deliver(ctx: JobContext, item: str) -> str:
    return item


async def plain(ctx: JobContext) -> None:
    return None


async def tick(ctx: JobContext) -> int:
    return 1


def test_a_task_keeps_its_function_and_its_name() -> None:
    tasks = TaskRegistry(queue="scratch")
    assert tasks.task(max_tries=3, timeout=7)(deliver) is deliver
    assert tasks.task()(plain) is plain
    assert tasks.cron(minute={5}, second={30})(tick) is tick

    assert deliver.__name__ == "deliver"  # returned unchanged: callable in tests
    optioned, bare = tasks.functions
    assert isinstance(optioned, Function)
    assert (optioned.name, optioned.max_tries, optioned.timeout_s) == ("deliver", 3, 7.0)
    assert bare is plain  # no options: ARQ lists the coroutine itself
    [cron_job] = tasks.cron_jobs
    assert (cron_job.name, cron_job.minute, cron_job.second) == ("cron:tick", {5}, {30})
    assert (cron_job.unique, cron_job.max_tries, cron_job.keep_result_s) == (True, 1, 0)


def test_registering_a_name_again_replaces_it() -> None:
    tasks = TaskRegistry(queue="scratch")
    tasks.task(max_tries=2)(plain)
    tasks.task(max_tries=5)(plain)

    [entry] = tasks.functions
    assert isinstance(entry, Function) and entry.max_tries == 5


def test_each_service_worker_is_a_declared_class_with_the_same_jobs_as_before() -> None:
    timeout = get_settings().worker_job_timeout_s
    expected = {
        BookingWorker: (
            "booking",
            BOOKING_QUEUE,
            ["ping", "sync_appointment"],
            {"cron:sweep_outbox", "cron:reap_idempotency_keys", "cron:escalate_overdue_callbacks"},
        ),
        WebhooksWorker: (
            "webhooks",
            WEBHOOKS_QUEUE,
            ["ping", "process_webhook_event"],
            {"cron:sweep_webhook_events", "cron:reconcile_calcom", "cron:enforce_retention"},
        ),
        NotificationsWorker: ("notifications", NOTIFY_QUEUE, ["ping", "notify"], None),
    }
    for worker, (service, queue, jobs, crons) in expected.items():
        assert issubclass(worker, ServiceWorker) and worker.__name__ == "WorkerSettings"
        assert (worker.service, worker.queue_name) == (service, queue)
        assert _names(worker)[: len(jobs)] == jobs
        if crons is not None:
            assert {c.name for c in worker.cron_jobs} == crons
        # ARQ reads options from the class's own attributes: every one is set on the subclass.
        own = vars(worker)
        assert own["keep_result"] == 0 and own["max_tries"] == MAX_TRIES
        assert own["job_timeout"] == timeout
        assert own["ctx"] == {"service": service, "queue_name": queue}
        assert own["health_check_key"].startswith(f"{queue}:health-check:")
