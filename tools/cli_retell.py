"""`appointments retell-call`: sign a function call as Retell does, send it, print the answer.

The body is Retell's wrapped call (`name`, `args`, `call` with a fresh `call_id`, the caller
and the called number), signed with the Retell API key (`X-Retell-Signature`,
shared.integrations.retell.signature), and posted to a local or remote booking service.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

import httpx

from shared.config import Settings
from shared.integrations.retell import signature as retell
from shared.phones import e164

HELP = """\
Send one signed Retell function call and print the answer (exit code 0 on a 2xx answer, 1
otherwise, 2 on bad arguments). The key is --key, else RETELL_API_KEY; the company's own
Retell key or the platform key works (the platform key needs --to or --agent-id naming a
registered number or agent). Example:
  appointments retell-call check_availability --args '{"service": "Herrenhaarschnitt",
    "date": "2026-12-08"}' --from +491701234567 --to +493012345678"""


def _phone(raw: str) -> str:
    number = e164(raw)
    if number is None:
        raise argparse.ArgumentTypeError(f"not a phone number: {raw!r} (e.g. +491701234567)")
    return number


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--args is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--args must be a JSON object, e.g. '{\"date\": ...}'")
    return value


def call_body(args: argparse.Namespace) -> dict[str, Any]:
    """The wrapped call Retell would send (its shape is Retell's: a dict)."""
    call: dict[str, Any] = {
        "call_id": f"cli_{uuid.uuid4().hex[:16]}",
        "call_type": "phone_call",
        "direction": "inbound",
        "from_number": args.from_number,
    }
    if args.to_number:
        call["to_number"] = args.to_number
    if args.agent_id:
        call["agent_id"] = args.agent_id
    return {"name": args.name, "args": args.args, "call": call}


def cmd_retell_call(args: argparse.Namespace, settings: Settings) -> int:
    key = args.key or settings.retell_api_key
    if not key:
        print("appointments: no Retell API key: set RETELL_API_KEY or pass --key", file=sys.stderr)
        return 2
    base = (args.url or f"http://127.0.0.1:{settings.booking_port}").rstrip("/")
    url = f"{base}/v1/retell/functions/{args.name}"
    raw = json.dumps(call_body(args)).encode()
    headers = {retell.HEADER: retell.sign(raw, key, retell.now_ms())}
    headers["Content-Type"] = "application/json"
    try:
        response = httpx.post(url, content=raw, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as error:
        print(f"appointments: cannot reach {url}: {error}", file=sys.stderr)
        return 1
    print(f"HTTP {response.status_code} from {url}", file=sys.stderr)
    try:
        print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    except ValueError:
        print(response.text)
    return 0 if response.is_success else 1


def add_command(commands: Any) -> None:
    """Register `retell-call` on the `appointments` sub-parsers."""
    parser = commands.add_parser(
        "retell-call",
        help="send a signed Retell function call (a test call) and print the answer",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="the function, e.g. check_availability")
    parser.add_argument(
        "--args", type=_json_object, default={}, metavar="JSON", help="the arguments object"
    )
    parser.add_argument(
        "--from", dest="from_number", type=_phone, required=True, help="the caller ID"
    )
    parser.add_argument(
        "--to", dest="to_number", type=_phone, help="the called number (selects the salon)"
    )
    parser.add_argument("--agent-id", help="the Retell agent id (selects the salon)")
    parser.add_argument(
        "--url", help="the booking service (default: http://127.0.0.1:BOOKING_PORT)"
    )
    parser.add_argument("--key", help="the Retell API key that signs (default: RETELL_API_KEY)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default: 30)")
    parser.set_defaults(handler=cmd_retell_call)
