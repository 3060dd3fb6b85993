"""`appointments webhooks replay ID`, the real executable against a migrated SQLite file and
the real Redis: the same rules as the API's replay, one JSON line, exit code 0 or 1."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import redis

from shared.jobs.queue import WEBHOOKS_QUEUE
from tests.cli.conftest import Cli


def insert_event(db_file: Path, status: str, error: str | None = None) -> str:
    """A stored Retell event no company claims (as ingestion stores one), in `status`."""
    event_id = str(uuid.uuid4())
    with sqlite3.connect(db_file) as conn:
        conn.execute(
            "INSERT INTO webhook_events (id, company_id, source, event_id, event_type, payload,"
            " status, correlation_id, attempts, error_message, processed_at, created_at,"
            " updated_at) VALUES (?, NULL, 'retell', ?, 'call_ended', ?, ?, 'call_1', 5, ?,"
            " '2025-07-01 17:02:00.000000', '2025-07-01 17:01:40.000000',"
            " '2025-07-01 17:02:00.000000')",
            (
                event_id,
                f"call_ended:{event_id}",
                json.dumps({"event": "call_ended", "call": {"call_id": event_id}}),
                status,
                error,
            ),
        )
    return event_id


def stored(db_file: Path, event_id: str) -> tuple[str, str | None, str | None, int]:
    with sqlite3.connect(db_file) as conn:
        found = conn.execute(
            "SELECT status, error_message, processed_at, attempts FROM webhook_events WHERE id = ?",
            (event_id,),
        ).fetchone()
    return found[0], found[1], found[2], found[3]


def test_replay_command_follows_the_api_rules(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    db_file = tmp_path / "appointments.db"
    assert cli("migrate").returncode == 0
    cli_env["REDIS_URL"] = redis_url
    failed = insert_event(db_file, "failed", "Cal.com answered 503")
    in_flight = insert_event(db_file, "processing")

    replayed = cli("webhooks", "replay", failed)

    assert replayed.returncode == 0, replayed.stderr
    assert [json.loads(line) for line in replayed.stdout.splitlines()] == [
        {"status": "accepted", "event_id": failed, "enqueued": True}
    ]
    assert stored(db_file, failed) == ("pending", None, None, 5)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zscore(WEBHOOKS_QUEUE, f"webhook:{failed}") is not None
        assert client.exists(f"arq:job:webhook:{failed}") == 1
        client.zrem(WEBHOOKS_QUEUE, f"webhook:{failed}")
        client.delete(f"arq:job:webhook:{failed}")
    finally:
        client.close()

    for event_id, code, message in (
        (in_flight, "conflict", "processing"),
        ("no-such-event", "not_found", "No such webhook event"),
    ):
        refused = cli("webhooks", "replay", event_id)
        assert refused.returncode == 1, refused.stdout
        line = json.loads(refused.stdout)
        assert (line["status"], line["event_id"]) == (code, event_id)
        assert message in line["detail"]
        assert message in refused.stderr
    assert stored(db_file, in_flight)[0] == "processing"

    # Without Redis the event is still accepted: pending, for the worker's sweeper.
    del cli_env["REDIS_URL"]
    ignored = insert_event(db_file, "ignored", "no company for this call")
    offline = cli("webhooks", "replay", ignored)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == {
        "status": "accepted",
        "event_id": ignored,
        "enqueued": False,
    }
    assert "sweeper" in offline.stderr
    assert stored(db_file, ignored)[0] == "pending"
