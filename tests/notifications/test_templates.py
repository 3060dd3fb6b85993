"""Notification texts: locale formatting, the built-in templates, validation and the sandbox."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

import pytest

from services.notifications.catalog.event_types import (
    APPOINTMENT_EVENTS,
    CALLBACK_EVENTS,
    EVENT_TYPES,
)
from services.notifications.templates.budget import TemplateError
from services.notifications.templates.context import VARIABLES, build_context
from services.notifications.templates.defaults import DEFAULTS, default_template
from services.notifications.templates.locale import (
    format_date,
    format_instant,
    format_money,
    format_time,
)
from services.notifications.templates.rendering import RenderedMessage, render
from services.notifications.templates.samples import sample_raw
from services.notifications.templates.schemas import EventType
from services.notifications.templates.validation import validate_template
from shared.errors import InvalidInput

BERLIN = "Europe/Berlin"
START = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
# The 13 event types as the seed migration 0002 has them.
SEEDED = [
    "booking_confirmed",
    "booking_rescheduled",
    "booking_cancelled",
    "booking_reminder_24h",
    "booking_reminder_2h",
    "booking_no_show",
    "booking_sync_failed",
    "cancellation_fee_charged",
    "modification_quota_exceeded",
    "callback_requested",
    "callback_assigned",
    "callback_overdue",
    "callback_escalated",
]
# GSM 03.38 basic set plus the extension table: SMS outside it drop to 70 chars per part.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
ALL = list(itertools.product(EVENT_TYPES, ("email", "sms", "whatsapp"), ("de", "en")))


def refusal(event_type: str, body: str, subject: str | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_template(event_type, body, subject)
    return caught.value


# Locale ----------------------------------------------------------------------------------


def test_long_form_in_both_languages() -> None:
    assert format_instant(START, BERLIN, "de") == "Dienstag, 24. November 2026 um 14:30 Uhr"
    assert format_instant(START, BERLIN, "en") == "Tuesday, 24 November 2026 at 14:30"


def test_short_forms() -> None:
    assert format_date(START, BERLIN, "de") == "24.11.2026"
    assert format_date(START, BERLIN, "en") == "24 November 2026"
    assert format_time(START, BERLIN, "de") == "14:30"
    assert format_time(START, BERLIN, "en") == "14:30"


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Spring forward on 2026-03-29: 02:00 CET becomes 03:00 CEST.
        (datetime(2026, 3, 28, 8, 0, tzinfo=UTC), "Samstag, 28. März 2026 um 09:00 Uhr"),
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Sonntag, 29. März 2026 um 01:59 Uhr"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Sonntag, 29. März 2026 um 03:00 Uhr"),
        (datetime(2026, 3, 29, 8, 0, tzinfo=UTC), "Sonntag, 29. März 2026 um 10:00 Uhr"),
        # Fall back on 2026-10-25: 03:00 CEST becomes 02:00 CET, 02:30 happens twice.
        (datetime(2026, 10, 24, 8, 0, tzinfo=UTC), "Samstag, 24. Oktober 2026 um 10:00 Uhr"),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "Sonntag, 25. Oktober 2026 um 02:30 Uhr"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "Sonntag, 25. Oktober 2026 um 02:30 Uhr"),
        (datetime(2026, 10, 25, 8, 0, tzinfo=UTC), "Sonntag, 25. Oktober 2026 um 09:00 Uhr"),
    ],
)
def test_dst_days_in_berlin(utc: datetime, expected: str) -> None:
    assert format_instant(utc, BERLIN, "de") == expected


def test_the_local_date_can_differ_from_the_utc_date() -> None:
    late = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert format_date(late, BERLIN, "de") == "01.01.2027"
    assert format_instant(late, BERLIN, "en") == "Friday, 1 January 2027 at 00:30"
    assert format_instant(late, "America/New_York", "en") == "Thursday, 31 December 2026 at 18:30"


def test_an_instant_in_another_offset_is_converted_too() -> None:
    from datetime import timedelta, timezone

    tokyo = datetime(2026, 11, 24, 22, 30, tzinfo=timezone(timedelta(hours=9)))
    assert format_time(tokyo, BERLIN, "de") == "14:30"


def test_naive_instants_and_unknown_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_instant(datetime(2026, 11, 24, 13, 30), BERLIN, "de")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        format_time(START, "Mars/Olympus", "de")


def test_other_languages_fall_back_to_german() -> None:
    assert format_instant(START, BERLIN, "fr") == "Dienstag, 24. November 2026 um 14:30 Uhr"
    assert format_money(Decimal("12.5"), "EUR", "fr") == "12,50 €"


@pytest.mark.parametrize(
    ("amount", "currency", "de", "en"),
    [
        ("12.50", "EUR", "12,50 €", "€12.50"),
        ("12.5", "EUR", "12,50 €", "€12.50"),
        ("1234.5", "EUR", "1.234,50 €", "€1,234.50"),
        ("1234567.891", "EUR", "1.234.567,89 €", "€1,234,567.89"),
        ("0.005", "EUR", "0,01 €", "€0.01"),
        ("0", "EUR", "0,00 €", "€0.00"),
        ("-7.25", "EUR", "-7,25 €", "-€7.25"),
        ("12.50", "CHF", "12,50 CHF", "CHF 12.50"),
        ("1234.5", "chf", "1.234,50 CHF", "CHF 1,234.50"),
    ],
)
def test_money(amount: str, currency: str, de: str, en: str) -> None:
    assert format_money(Decimal(amount), currency, "de") == de
    assert format_money(Decimal(amount), currency, "en") == en


# The built-in templates ------------------------------------------------------------------


def test_the_catalogue_matches_the_seeded_event_types() -> None:
    assert list(EVENT_TYPES) == SEEDED
    assert list(get_args(EventType)) == SEEDED
    assert set(DEFAULTS) == set(ALL)
    assert set(VARIABLES) == set(SEEDED)


@pytest.mark.parametrize(("event_type", "channel", "language"), ALL)
def test_every_default_is_valid_and_renders(event_type: str, channel: str, language: str) -> None:
    subject, body = DEFAULTS[event_type, channel, language]
    validate_template(event_type, body, subject)
    message = render(event_type, channel, language, sample_raw(event_type, language))
    texts = [message.body] if message.subject is None else [message.subject, message.body]
    for text in texts:
        assert "{" not in text and "}" not in text and "None" not in text, text
        for line in text.split("\n"):
            assert "  " not in line and line == line.strip(), line
    assert "Mitte" in message.body
    if event_type in APPOINTMENT_EVENTS:
        assert "Damenhaarschnitt" in message.body
        assert "14:30" in message.body
        assert (
            "24.11.2026" in message.body
            or "24. November 2026" in message.body
            or ("24 November 2026" in message.body)
        )
    else:
        assert "+49 170 1234567" in message.body
        assert "11:00" in message.body  # the callback is due 10:00 UTC = 11:00 CET
    if language == "de":
        assert "Uhr" in message.body
    else:
        assert "Uhr" not in message.body
    if channel == "email":
        assert message.subject and "\n" not in message.subject
        assert message.body.count("\n") >= 5
    else:
        assert message.subject is None
    if channel == "sms":
        assert len(message.body) < 320, len(message.body)
        assert set(message.body) <= GSM7, set(message.body) - GSM7


def test_a_reminder_sms_reads_exactly_like_this() -> None:
    message = render("booking_reminder_2h", "sms", "de", sample_raw("booking_reminder_2h"))
    assert message == RenderedMessage(
        subject=None,
        body="Salon Schnittpunkt: Ihr Termin am 24.11.2026 beginnt um 14:30 Uhr "
        "(Damenhaarschnitt bei Anna). Ort: Mitte, Torstraße 12, 10119 Berlin. Bis gleich!",
    )


def test_missing_values_leave_no_holes() -> None:
    raw = sample_raw("booking_confirmed") | {
        "staff": None,
        "branch_address": None,
        "branch_phone": None,
        "price": None,
        "reference": None,
    }
    sms = render("booking_confirmed", "sms", "en", raw)
    assert sms.body == (
        "Salon Schnittpunkt: Your appointment on 24 November 2026 at 14:30 is confirmed "
        "(Damenhaarschnitt). Location: Mitte. If you can't make it, please let us know in good "
        "time."
    )
    email = render("booking_confirmed", "email", "de", raw)
    assert email.body == (
        "Hallo Maria Schneider,\n\n"
        "vielen Dank für Ihre Buchung bei Salon Schnittpunkt. Ihr Termin ist bestätigt:\n\n"
        "Wann: Dienstag, 24. November 2026 um 14:30 Uhr\n"
        "Was: Damenhaarschnitt (45 Min.)\n"
        "Wo: Mitte\n\n"
        "Falls Sie den Termin nicht wahrnehmen können, sagen Sie bitte rechtzeitig ab.\n\n"
        "Wir freuen uns auf Sie!\n\n"
        "Viele Grüße\n"
        "Salon Schnittpunkt"
    )


def test_staff_facing_callback_mail() -> None:
    message = render("callback_escalated", "email", "en", sample_raw("callback_escalated", "en"))
    assert message.subject == "Callback escalated (level 1): Maria Schneider"
    assert message.body.startswith(
        "This callback request was not handled in time and has been escalated to level 1:\n\n"
        "Name: Maria Schneider\nPhone: +49 170 1234567\nReason: Question about hair colouring\n"
        "Preferred time: afternoons\nBranch: Mitte\n"
        "Call back by: Tuesday, 24 November 2026 at 11:00\n"
    )


def test_default_template_falls_back_to_german_and_refuses_unknown_targets() -> None:
    assert (
        default_template("booking_confirmed", "sms", "fr")
        == DEFAULTS["booking_confirmed", "sms", "de"]
    )
    with pytest.raises(InvalidInput) as event:
        default_template("booking_exploded", "sms", "de")
    assert event.value.extra["field"] == "event_type"
    with pytest.raises(InvalidInput) as channel:
        default_template("booking_confirmed", "fax", "de")
    assert channel.value.extra["field"] == "channel"


# Context ---------------------------------------------------------------------------------


def test_variables_follow_the_contract() -> None:
    appointment = {
        "company",
        "language",
        "customer_name",
        "service",
        "staff",
        "branch",
        "branch_address",
        "branch_phone",
        "start",
        "date",
        "time",
        "end_time",
        "duration_minutes",
        "price",
        "appointment_id",
        "reference",
    }
    callback = {
        "company",
        "language",
        "customer_name",
        "callback_phone",
        "callback_reason",
        "preferred_time",
        "branch",
        "due",
        "assigned_to",
        "escalation_level",
        "callback_id",
    }
    assert VARIABLES["booking_confirmed"] == appointment
    assert VARIABLES["booking_rescheduled"] == appointment | {"old_start"}
    assert VARIABLES["booking_cancelled"] == appointment | {"fee", "reason"}
    assert VARIABLES["cancellation_fee_charged"] == appointment | {"fee", "deadline"}
    assert VARIABLES["booking_sync_failed"] == appointment | {"error"}
    assert VARIABLES["modification_quota_exceeded"] == appointment | {
        "quota_limit",
        "window_days",
    }
    for event_type in CALLBACK_EVENTS:
        assert VARIABLES[event_type] == callback


def test_build_context_formats_in_the_language_and_zone() -> None:
    context = build_context("booking_cancelled", "en", sample_raw("booking_cancelled", "en"))
    assert context == {
        "company": "Salon Schnittpunkt",
        "language": "en",
        "customer_name": "Maria Schneider",
        "service": "Damenhaarschnitt",
        "staff": "Anna",
        "branch": "Mitte",
        "branch_address": "Torstraße 12, 10119 Berlin",
        "branch_phone": "+49 30 1234567",
        "start": "Tuesday, 24 November 2026 at 14:30",
        "date": "24 November 2026",
        "time": "14:30",
        "end_time": "15:15",
        "duration_minutes": "45",
        "price": "€48.00",
        "appointment_id": "0b6c2f1e-7d4a-4e8b-9c3f-1a2b3c4d5e6f",
        "reference": "K7M2P9",
        "fee": "€15.00",
        "reason": "Illness",
    }


def test_build_context_keeps_only_the_events_variables_and_fills_gaps() -> None:
    raw: dict[str, Any] = {
        "due_at": "2026-03-29T08:00:00+00:00",  # an ISO text works as well
        "escalation_level": 2,
        "callback_phone": None,
        "starts_at": START,  # not a callback variable: dropped
        "timezone": "Europe/Vienna",
    }
    context = build_context("callback_overdue", "de", raw)
    assert context["due"] == "Sonntag, 29. März 2026 um 10:00 Uhr"
    assert context["escalation_level"] == "2"
    assert context["callback_phone"] == ""
    assert context["company"] == ""
    assert set(context) == VARIABLES["callback_overdue"]


def test_a_zero_fee_is_no_fee_and_other_currencies_keep_their_code() -> None:
    raw = sample_raw("booking_cancelled") | {"fee": Decimal("0.00"), "currency": "CHF"}
    context = build_context("booking_cancelled", "de", raw)
    assert context["fee"] == ""
    assert context["price"] == "48,00 CHF"
    body = render("booking_cancelled", "sms", "de", raw).body
    assert "Stornogebühr" not in body


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"starts_at": datetime(2026, 11, 24, 13, 30)}, "starts_at"),
        ({"starts_at": "next tuesday"}, "starts_at"),
        ({"price": "cheap"}, "price"),
        ({"starts_at": START, "timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_raw_data_that_cannot_be_formatted(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(TemplateError) as caught:
        build_context("booking_confirmed", "de", raw)
    assert caught.value.extra["field"] == field
    assert caught.value.status == 422


def test_unknown_event_type() -> None:
    for call in (
        lambda: build_context("booking_exploded", "de", {}),
        lambda: sample_raw("booking_exploded"),
        lambda: validate_template("booking_exploded", "Hallo"),
    ):
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.extra["field"] == "event_type"
        assert caught.value.detail == "Unknown event type 'booking_exploded'."


# Validation ------------------------------------------------------------------------------


def test_a_syntax_error_names_its_line() -> None:
    error = refusal("booking_confirmed", "Hallo {{ customer_name }},\n\n{% if staff }}bei Anna")
    assert error.detail == "line 3: unexpected '}'"
    assert error.extra["field"] == "body"
    assert error.extra["line"] == 3


def test_an_unknown_variable_names_its_line() -> None:
    error = refusal("booking_cancelled", "Hallo {{ customer_name }},\nGebühr: {{ fee_amount }}")
    assert error.detail == "line 2: unknown variable 'fee_amount'"
    assert (error.extra["field"], error.extra["line"]) == ("body", 2)


def test_the_subject_is_checked_as_its_own_field() -> None:
    error = refusal("booking_confirmed", "{{ start }}", subject="Termin {{ when }}")
    assert error.detail == "line 1: unknown variable 'when'"
    assert (error.extra["field"], error.extra["line"]) == ("subject", 1)


def test_variables_belong_to_their_event() -> None:
    validate_template("booking_cancelled", "Gebühr: {{ fee }}")
    error = refusal("booking_confirmed", "Gebühr: {{ fee }}")
    assert error.detail == "line 1: unknown variable 'fee'"
    error = refusal("callback_requested", "{{ callback_phone }}\n{{ service }}")
    assert error.detail == "line 2: unknown variable 'service'"


def test_names_bound_in_the_template_are_fine_where_they_are_bound() -> None:
    validate_template(
        "booking_confirmed",
        "{% set greeting = 'Hallo ' ~ customer_name %}{{ greeting }}\n"
        "{% for part in [branch, branch_address] %}{% if part %}{{ part }}\n{% endif %}"
        "{% endfor %}\n"
        "{% with who = staff|default('unser Team', true) %}Bei {{ who }}{% endwith %}",
    )
    error = refusal("booking_confirmed", "{% for part in [branch] %}{% endfor %}\n{{ part }}")
    assert error.detail == "line 2: unknown variable 'part'"
    error = refusal("booking_confirmed", "{{ greeting }}\n{% set greeting = 'Hallo' %}")
    assert error.detail == "line 1: unknown variable 'greeting'"


@pytest.mark.parametrize(
    ("body", "line", "detail"),
    [
        ("{{ ''.__class__ }}", 1, "attribute access is not allowed"),
        ("x\n{{ company.__class__.__mro__ }}", 2, "attribute access is not allowed"),
        ("{{ company[0] }}", 1, "item access is not allowed"),
        ("{{ company.upper() }}", 1, "function calls are not allowed"),
        ("\n\n{{ cycler('a') }}", 3, "function calls are not allowed"),
        ("{% include 'other.txt' %}", 1, "'{% include %}' is not allowed"),
        ("{% macro m() %}x{% endmacro %}", 1, "'{% macro %}' is not allowed"),
        ("{{ company * 100000 }}", 1, "the operator '*' is not allowed"),
        ("{{ '%999999999d' % 1 }}", 1, "the operator '%' is not allowed"),
        ("{% for c in company %}{{ c }}{% endfor %}", 1, "a loop can only go over a list"),
        (
            "{% for a in [1] %}\n{% for b in [1] %}\n{% for c in [1] %}x{% endfor %}"
            "{% endfor %}{% endfor %}",
            3,
            "loops may be nested at most 2 deep",
        ),
        (
            "{% set a = company ~ company %}\n{% set a = a ~ a %}{{ a }}",
            2,
            "'a' was set in the template and cannot be used here",
        ),
        ("{% if company is callable %}x{% endif %}", 1, "test 'callable' is not allowed"),
    ],
)
def test_the_sandbox_surface_is_refused_at_save_time(body: str, line: int, detail: str) -> None:
    error = refusal("booking_confirmed", body)
    assert error.detail.startswith(f"line {line}: {detail}"), error.detail
    assert (error.extra["field"], error.extra["line"]) == ("body", line)


@pytest.mark.parametrize("name", ["format", "attr", "map", "xmlattr", "pprint", "center"])
def test_filters_outside_the_allow_list_are_refused(name: str) -> None:
    error = refusal("booking_confirmed", f"Hallo\n{{{{ company|{name} }}}}")
    assert error.detail == (
        f"line 2: filter '{name}' is not allowed (allowed: capitalize, default, length, lower, "
        "replace, title, trim, truncate, upper)"
    )


def test_allowed_filters_work() -> None:
    body = (
        "{{ company|upper }} {{ customer_name|lower }} {{ staff|title }} {{ branch|length }} "
        "{{ service|replace('Damen', 'Herren')|truncate(12, true, '..', 0) }} "
        "{{ reason|default('kein Grund', true) }}"
    )
    validate_template("booking_cancelled", body)
    raw = sample_raw("booking_cancelled") | {"reason": None}
    assert render("booking_cancelled", "sms", "de", raw, body=body).body == (
        "SALON SCHNITTPUNKT maria schneider Anna 5 Herrenhaar.. kein Grund"
    )


def test_run_time_errors_are_caught_by_the_trial_render() -> None:
    error = refusal("booking_confirmed", "Hallo\n\n{{ company + 1 }}")
    assert isinstance(error, TemplateError)
    assert error.detail == 'line 3: can only concatenate str (not "int") to str'
    assert error.extra["line"] == 3


@pytest.mark.parametrize(
    ("body", "subject", "field", "detail"),
    [
        ("", None, "body", "The body must not be empty."),
        ("  \n ", None, "body", "The body must not be empty."),
        ("x" * 10_001, None, "body", "The body is longer than 10000 characters (10001)."),
        ("{% if false %}x{% endif %}", None, "body", "The body renders as empty text."),
        ("Hallo", " ", "subject", "The subject must not be empty."),
        ("Hallo", "s" * 256, "subject", "The subject is longer than 255 characters (256)."),
    ],
)
def test_sizes_and_emptiness(body: str, subject: str | None, field: str, detail: str) -> None:
    error = refusal("booking_confirmed", body, subject)
    assert (error.detail, error.extra["field"]) == (detail, field)


def test_limits_are_inclusive() -> None:
    validate_template("booking_confirmed", "x" * 10_000, "s" * 255)


# Rendering -------------------------------------------------------------------------------


def test_a_company_body_keeps_the_default_subject_unless_it_has_its_own() -> None:
    raw = sample_raw("booking_confirmed")
    own = render("booking_confirmed", "email", "de", raw, body="Bis {{ start }}!")
    assert own == RenderedMessage(
        subject="Terminbestätigung: Damenhaarschnitt am 24.11.2026 um 14:30 Uhr",
        body="Bis Dienstag, 24. November 2026 um 14:30 Uhr!",
    )
    both = render(
        "booking_confirmed", "email", "en", raw, body="{{ time }}", subject="Hi {{ date }}"
    )
    assert both == RenderedMessage(subject="Hi 24 November 2026", body="14:30")
    sms = render("booking_confirmed", "sms", "de", raw, body="{{ time }}", subject="ignored")
    assert sms == RenderedMessage(subject=None, body="14:30")


def test_lines_of_only_tags_leave_no_trace_and_inline_tags_keep_the_line_break() -> None:
    body = (
        "Hallo {{ customer_name }},\n"
        "  {% if staff %}\n"
        "Bei: {{ staff }}\n"
        "  {% endif %}\n"
        "Was: {{ service }}{% if price %} ({{ price }}){% endif %}\n"
        "{% if reason %}\n"
        "Grund: {{ reason }}\n"
        "{% endif %}\n"
        "\n\n\n"
        "Ende   \n"
    )
    raw = sample_raw("booking_cancelled") | {"reason": None}
    assert render("booking_cancelled", "sms", "de", raw, body=body).body == (
        "Hallo Maria Schneider,\nBei: Anna\nWas: Damenhaarschnitt (48,00 €)\n\nEnde"
    )


def test_raw_blocks_stay_verbatim() -> None:
    body = (
        "Schreibweise:{% raw %}\n{% if staff %}\n{{ staff }}{% endraw %}\n"
        "{% if staff %}\nok\n{% endif %}"
    )
    validate_template("booking_confirmed", body)
    raw = sample_raw("booking_confirmed")
    assert render("booking_confirmed", "sms", "de", raw, body=body).body == (
        "Schreibweise:\n{% if staff %}\n{{ staff }}\nok"
    )


def test_a_subject_stays_one_line_whatever_the_data() -> None:
    raw = sample_raw("booking_confirmed") | {"customer_name": "Eve\r\nBcc: all@example.com"}
    message = render(
        "booking_confirmed", "email", "de", raw, body="x", subject="Für {{ customer_name }}"
    )
    assert message.subject == "Für Eve Bcc: all@example.com"


def test_the_sandbox_holds_at_render_time_too() -> None:
    # Not validated (as if written to the database by hand): the sandbox still refuses.
    raw = sample_raw("booking_confirmed")
    with pytest.raises(TemplateError) as caught:
        render("booking_confirmed", "sms", "de", raw, body="ok\n{{ ''.__class__.__mro__ }}")
    assert caught.value.detail == (
        "line 2: access to attribute '__class__' of 'str' object is unsafe."
    )
    with pytest.raises(TemplateError, match="No filter named 'attr'"):
        render("booking_confirmed", "sms", "de", raw, body="{{ company|attr('upper') }}")
    with pytest.raises(TemplateError, match="'range' is undefined"):
        render("booking_confirmed", "sms", "de", raw, body="{{ range(10) }}")


def test_output_cannot_explode() -> None:
    raw = sample_raw("callback_requested") | {"callback_reason": "x" * 300}
    body = "{{ callback_reason|replace('', callback_reason) }}"
    validate_template("callback_requested", body)  # fine for the short sample reason
    with pytest.raises(TemplateError) as caught:  # 300 + 301 x 300 characters is too much
        render("callback_requested", "email", "de", raw, body=body)
    assert caught.value.detail == "line 1: replace would make the text too long"
    long_loop = (
        "{% for a in [company, company] %}{% for b in ["
        + ", ".join(["callback_reason"] * 100)
        + "] %}{{ b }}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateError, match="renders to more than 50000 characters"):
        render("callback_requested", "email", "de", raw, body=long_loop)


def test_language_falls_back_to_german() -> None:
    raw = sample_raw("booking_reminder_24h")
    assert render("booking_reminder_24h", "sms", "fr", raw) == render(
        "booking_reminder_24h", "sms", "de", raw
    )


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        render("booking_confirmed", "pigeon", "de", {})
    assert caught.value.extra["field"] == "channel"
