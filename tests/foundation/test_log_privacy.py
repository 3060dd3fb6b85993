"""Logs carry no phone numbers or e-mails, also URL-encoded, and no SQL parameter values
(issue 13, item 9; docs/adr/0015)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.db.engine import Database
from shared.models import Customer
from shared.observability.logging import configure_logging, mask
from tests.support.factories import create_tenant

PHONE = "+4917612345678"
EMAIL = "theo.zw@example.de"
NAME = "Theodora Zwiebelbrecht"


@pytest.fixture
def real_logging() -> Iterator[None]:
    """The services' logging set-up (configure_logging), undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # An in-process uvicorn started by an earlier test leaves its loggers at WARNING.
    access = logging.getLogger("uvicorn.access")
    access_level, access_disabled = access.level, access.disabled
    access.setLevel(logging.NOTSET)
    access.disabled = False
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    access.setLevel(access_level)
    access.disabled = access_disabled


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (
            "GET /v1/appointments?phone=%2B4917612345678 200",
            "GET /v1/appointments?phone=+***********78 200",
        ),
        ("to=%2b4917612345678&x=1", "to=+***********78&x=1"),
        ("q=0176%2012345678", "q=**********78"),
        ("q=0176+12345678&page=2", "q=**********78&page=2"),
        ("email=theo.zw%40example.de&next=1", "email=t***@example.de&next=1"),
        (
            "/v2/bookings?attendeeEmail=theo.zw%40example.de",
            "/v2/bookings?attendeeEmail=t***@example.de",
        ),
        ("from %2B4930123456 ok", "from +********56 ok"),
        ("page 2 of 10, 15 %", "page 2 of 10, 15 %"),
        ("Duplicate entry 'c1-+4917612345678' for key 'uq'", "Duplicate entry '***' for key 'uq'"),
        (
            "[SQL: INSERT ...]\n[parameters: ('a', 'b')]\n(x)",
            "[SQL: INSERT ...]\n[parameters: hidden]\n(x)",
        ),
    ],
)
def test_mask_encoded_forms(raw: str, masked: str) -> None:
    assert mask(raw) == masked


@pytest.mark.parametrize("json_logs", [True, False])
def test_every_log_line_masks_url_encoded_numbers_and_addresses(
    real_logging: None, capsys: pytest.CaptureFixture[str], json_logs: bool
) -> None:
    configure_logging("booking", "INFO", json_logs=json_logs)
    log = logging.getLogger("uvicorn.access")
    log.info(
        '127.0.0.1 - "GET /v1/appointments?phone=%s&email=%s HTTP/1.1" 200',
        "%2B4917612345678",
        "theo.zw%40example.de",
        extra={"url": "https://x.test/?to=%2B4917612345678&cc=theo.zw%40example.de"},
    )
    out = capsys.readouterr().out
    assert out.strip(), "nothing logged"
    for secret in ("4917612345678", "12345678", "theo.zw", "theo.zw%40"):
        assert secret not in out, out
    assert "+***********78" in out
    assert "t***@example.de" in out
    if json_logs:
        line = json.loads(out)
        assert line["url"] == "https://x.test/?to=+***********78&cc=t***@example.de"


async def test_a_logged_integrity_error_carries_no_parameter_values(
    db: Database, real_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = await create_tenant(db)
    async with db.transaction(tenant.company_id) as session:
        session.add(Customer(name="Erste", phone=PHONE, email="first@example.de"))
    with pytest.raises(IntegrityError) as caught:
        async with db.transaction(tenant.company_id) as session:
            await session.execute(
                sa.insert(Customer).values(
                    id="dup-1", company_id=tenant.company_id, name=NAME, phone=PHONE, email=EMAIL
                )
            )
    assert NAME not in str(caught.value)  # the engine hides bound parameters
    assert EMAIL not in str(caught.value)
    configure_logging("booking", "INFO", json_logs=True)
    logging.getLogger("shared.web.problems").error("unhandled error", exc_info=caught.value)
    logging.getLogger("jobs").warning("job failed", extra={"error": str(caught.value)})
    out = capsys.readouterr().out
    assert out.count("\n") == 2, out
    for secret in (NAME, EMAIL, PHONE, PHONE[1:], "Zwiebelbrecht"):
        assert secret not in out, out
    assert "IntegrityError" in out
    assert "[parameters:" not in out or "[parameters: hidden]" in out
