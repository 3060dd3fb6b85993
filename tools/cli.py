"""The `appointments` command: migrate, seed-demo, create-api-key, list-api-keys,
revoke-api-key, rotate-secrets, run, info, retell-call, webhooks replay.

Every command reads its settings from the environment (DATABASE_URL, REDIS_URL, the *_PORT
variables), like the services do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared.config import Settings, get_settings
from shared.db.engine import Database, create_engine
from shared.db.tenancy import SYSTEM
from shared.errors import AppError, NotFound
from shared.models import Company
from shared.security.api_keys import SCOPES, issue_key
from tools.children import docs_urls
from tools.cli_info import add_command as add_info_command
from tools.cli_keys import add_commands as add_key_commands
from tools.cli_keys import publish
from tools.cli_retell import add_command as add_retell_command
from tools.demo import DEMO_COMPANY_NAME, DEMO_KEY_NAME, DemoTenant, seed_demo
from tools.key_store import SERVICE_KEY_FILE, service_key, state_dir
from tools.runner import DEFAULT_REDIS_DIR, run

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"

SEED_HELP = f"""\
Create the demo tenant (a hair salon in Europe/Berlin: 2 branches with inbound numbers,
4 services, 3 staff with working hours), or return the existing tenant of that name with the
same ids and secrets and no new rows. API keys are stored hashed, so the admin key named
"{DEMO_KEY_NAME}" is kept in plain text in a 0600 file of the state dir and printed again while
it works: a key printed earlier stays valid. Only when it no longer verifies (revoked, other
database) is a new one issued and the earlier "{DEMO_KEY_NAME}" keys revoked."""


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# --- migrate -----------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from alembic import command
    from alembic.config import Config

    if not ALEMBIC_INI.is_file():
        print(f"appointments: {ALEMBIC_INI} not found (use a source checkout)", file=sys.stderr)
        return 1
    config = Config(str(ALEMBIC_INI))
    config.attributes["url"] = settings.database_url
    command.upgrade(config, "head")
    revision = asyncio.run(_current_revision(settings))
    print(f"database {_masked(settings.database_url)} is at revision {revision}")
    return 0


async def _current_revision(settings: Settings) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(settings.database_url, settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )
    finally:
        await engine.dispose()


# --- seed-demo ---------------------------------------------------------------------------------


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    key_dir = args.state_dir or state_dir(settings)
    tenant = asyncio.run(_seed(settings, args.company_name, key_dir))
    if tenant.new_key and not asyncio.run(publish(settings)) and settings.redis_url:
        print("appointments: revoking earlier demo keys was not published", file=sys.stderr)
    if args.json:
        print(json.dumps(tenant.as_json(), indent=2))
    else:
        print(_summary(tenant, settings))
    return 0


async def _seed(settings: Settings, company_name: str, key_dir: Path) -> DemoTenant:
    db = Database(settings=settings)
    try:
        return await seed_demo(db, company_name, key_dir)
    finally:
        await db.dispose()


def _summary(tenant: DemoTenant, settings: Settings) -> str:
    branch_names = {b.id: b.name for b in tenant.branches}
    docs = docs_urls(settings)
    lines = [
        f'Demo tenant "{tenant.company_name}" (company {tenant.company_id}, {tenant.timezone})',
        f"  API key (admin): {tenant.api_key}",
        "    new: earlier demo keys are revoked"
        if tenant.new_key
        else "    the same key as before (kept in the state dir while it works)",
        "  Branches:",
        *(f"    {b.name:<16} {b.phone_number}" for b in tenant.branches),
        "  Services:",
        *(
            f"    {s.name:<18} {s.duration_minutes:>3} min {s.price:>7.2f} EUR"
            for s in tenant.services
        ),
        "  Staff:",
        *(f"    {s.name:<16} {branch_names[s.branch_id]}" for s in tenant.staff),
        "API docs (once `appointments run` is up):",
        *(f"  {name:<14} {url}" for name, url in docs.items()),
        f'Try: curl -H "Authorization: Bearer {tenant.api_key}" '
        f"{docs['booking'].removesuffix('/docs')}/v1/admin/branches",
    ]
    return "\n".join(lines)


# --- create-api-key ----------------------------------------------------------------------------


def _scopes(value: str) -> list[str]:
    scopes = sorted({s.strip() for s in value.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(SCOPES)}, got {value!r}"
        )
    return scopes


def cmd_create_api_key(args: argparse.Namespace, settings: Settings) -> int:
    company_id = None if args.platform else args.company_id
    plaintext = asyncio.run(_create_key(settings, company_id, args.name, args.scopes))
    owner = "platform key (send X-Company-ID)" if company_id is None else f"company {company_id}"
    print(
        f"API key {args.name!r}, scopes {','.join(args.scopes)}, {owner}: shown once, store it now",
        file=sys.stderr,
    )
    print(plaintext)
    return 0


async def _create_key(
    settings: Settings, company_id: str | None, name: str, scopes: list[str]
) -> str:
    db = Database(settings=settings)
    try:
        async with db.transaction(SYSTEM) as session:
            if company_id is not None:
                found = await session.scalar(select(Company.id).where(Company.id == company_id))
                if found is None:
                    raise NotFound(f"no company with id {company_id}")
            issued = issue_key(session, company_id=company_id, name=name, scopes=scopes)
        return issued.plaintext
    finally:
        await db.dispose()


# --- webhooks replay ---------------------------------------------------------------------------


def cmd_webhooks_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Replay one stored webhook event (any company's): one JSON line on stdout."""
    try:
        enqueued = asyncio.run(_replay_webhook(settings, args.event_id))
    except AppError as exc:
        print(json.dumps({"status": exc.code, "event_id": args.event_id, "detail": exc.detail}))
        print(f"appointments: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps({"status": "accepted", "event_id": args.event_id, "enqueued": enqueued}))
    if not enqueued:
        print(
            "appointments: the event is pending but Redis did not take the job; "
            "the webhooks worker's sweeper will enqueue it",
            file=sys.stderr,
        )
    return 0


async def _replay_webhook(settings: Settings, event_id: str) -> bool:
    from arq.connections import ArqRedis

    from services.webhooks.events.replay import replay
    from shared.redis.connection import redis_client

    db = Database(settings=settings)
    client = redis_client(settings=settings) if settings.redis_url else None
    try:
        pool = ArqRedis(connection_pool=client.connection_pool) if client else None
        return await replay(db, pool, event_id)
    finally:
        if client is not None:
            await client.aclose()
        await db.dispose()


# --- run ---------------------------------------------------------------------------------------


def with_service_key(settings: Settings, key_dir: Path) -> Settings:
    """Services call each other (booking -> policy) with a platform key of scope "service":
    SERVICE_API_KEY, else the one kept in `key_dir` while it verifies, else a new one."""
    if settings.service_api_key:
        return settings
    key, reused = asyncio.run(_service_key(settings, key_dir))
    print(
        f"[appointments run] service key {'reused' if reused else 'issued'} "
        f"({key_dir / SERVICE_KEY_FILE})",
        flush=True,
    )
    os.environ["SERVICE_API_KEY"] = key  # inherited by the children
    return settings.model_copy(update={"service_api_key": key})


async def _service_key(settings: Settings, key_dir: Path) -> tuple[str, bool]:
    db = Database(settings=settings)
    try:
        return await service_key(db, key_dir)
    finally:
        await db.dispose()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    key_dir = args.state_dir or state_dir(settings)
    return run(
        settings,
        redis_dir=args.redis_dir,
        prepare=lambda current: with_service_key(current, key_dir),
        key_dir=key_dir,
    )


# --- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appointments",
        description="Appointment backend: database migrations, demo data, API keys, local run.",
        epilog="Settings come from the environment: DATABASE_URL, REDIS_URL, BOOKING_PORT, ...",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser(
        "migrate",
        help="upgrade the database to the latest schema",
        description="Run `alembic upgrade head` on DATABASE_URL and print the revision.",
    )
    migrate.set_defaults(handler=cmd_migrate)

    seed = commands.add_parser(
        "seed-demo",
        help="create (or return) the demo tenant and print a fresh admin API key",
        description=SEED_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seed.add_argument(
        "--company-name",
        default=DEMO_COMPANY_NAME,
        metavar="NAME",
        help="the tenant's name; the same name returns the same tenant "
        f"(default: {DEMO_COMPANY_NAME})",
    )
    seed.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: company_id, api_key, retell_api_key, calcom_webhook_secret, "
        "timezone, branches, services, staff",
    )
    seed.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the demo key is kept (default: beside the SQLite database, else ./var)",
    )
    seed.set_defaults(handler=cmd_seed_demo)

    key = commands.add_parser(
        "create-api-key",
        help="issue an API key and print it once",
        description="Issue an API key. Only its hash is stored: the printed key cannot be shown "
        "again.",
    )
    owner = key.add_mutually_exclusive_group(required=True)
    owner.add_argument("--company-id", metavar="ID", help="the company the key belongs to")
    owner.add_argument(
        "--platform",
        action="store_true",
        help="a platform key: belongs to no company, callers send X-Company-ID",
    )
    key.add_argument(
        "--scopes",
        type=_scopes,
        required=True,
        metavar="SCOPES",
        help=f"comma-separated, from {','.join(SCOPES)} (admin holds every scope)",
    )
    key.add_argument("--name", required=True, help="a label for the key, e.g. who uses it")
    key.set_defaults(handler=cmd_create_api_key)
    add_key_commands(commands)
    add_retell_command(commands)

    run_parser = commands.add_parser(
        "run",
        help="run the four services and their workers in the foreground",
        description="Start the booking, policy, webhooks and notifications services (uvicorn) "
        "and the booking, webhooks and notifications workers (arq) as child processes, logging "
        "to stdout. Without REDIS_URL an embedded Redis is started. A child (or the embedded "
        "Redis) that exits on its own is restarted after 1 s, doubling up to 30 s (back to 1 s "
        "after it ran 60 s); restarts are counted on SUPERVISOR_METRICS_PORT (9104, 0: off). "
        "Five restarts of one child within 60 s are tolerated: its sixth crash within 60 s "
        "stops everything, exit code 3. Ctrl-C, SIGTERM or SIGHUP stops everything (children "
        "get SIGTERM and up to 10 s); exit code 0.",
    )
    run_parser.add_argument(
        "--redis-dir",
        type=Path,
        default=DEFAULT_REDIS_DIR,
        help=f"data directory of the embedded Redis (default: {DEFAULT_REDIS_DIR})",
    )
    run_parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the service key is kept (default: beside the SQLite database, else ./var)",
    )
    run_parser.set_defaults(handler=cmd_run)
    add_info_command(commands)

    webhooks = commands.add_parser(
        "webhooks",
        help="operate on stored webhook events",
        description="Operate on stored Cal.com and Retell webhook events.",
    )
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    replay = webhook_commands.add_parser(
        "replay",
        help="process a processed, ignored or failed event again",
        description="Set the event back to pending, clear its error and enqueue its processing "
        "job (REDIS_URL). Prints one JSON line; exit code 0 when accepted, 1 when the event "
        "does not exist or is still pending/processing.",
    )
    replay.add_argument("event_id", metavar="ID", help="the event's id (webhook_events.id)")
    replay.set_defaults(handler=cmd_webhooks_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"appointments: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        return handler(args, settings)
    except AppError as exc:
        print(f"appointments: {exc.detail}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        print(
            f"appointments: database error on {_masked(settings.database_url)}: {exc.orig}\n"
            "  (is the database reachable, and has `appointments migrate` run?)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
