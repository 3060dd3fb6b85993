"""The ops page's pure parts: failure causes, the translation table, the language choice and
the date formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.booking.ops.causes import CAUSES, Signal, classify, group
from services.booking.ops.i18n import CAUSE_KEYS, LABELS, Formatter, choose_language
from services.booking.ops.page import headline
from shared.local_time import zone_of

T0 = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("signal", "cause"),
    [
        (Signal("calcom", T0, 401, "Cal.com answered 401 (Unauthorized)"), "calcom_auth"),
        (Signal("calcom", T0, 403, None), "calcom_auth"),
        (
            Signal("sync", T0, None, "CalcomRejected: Cal.com answered 401 (Unauthorized)"),
            "calcom_auth",
        ),
        (Signal("calcom", T0, 429, "slow down"), "calcom_rate_limited"),
        (Signal("sync", T0, None, "CalcomTransient: Cal.com answered 429"), "calcom_rate_limited"),
        (Signal("calcom", T0, 502, "Cal.com answered 502 (Bad Gateway)"), "calcom_unreachable"),
        (Signal("calcom", T0, None, "ReadTimeout"), "calcom_unreachable"),
        (
            Signal("sync", T0, None, "CircuitOpen: Cal.com paused after repeated failures"),
            "calcom_unreachable",
        ),
        (Signal("sync", T0, None, "CalcomRejected: event type not found"), "calcom_rejected"),
        (Signal("calcom", T0, 400, "Cal.com answered 400 (Bad Request)"), "calcom_rejected"),
        (
            Signal("email", T0, None, "SMTP delivery to a***@x.de failed: Connection refused"),
            "smtp_unreachable",
        ),
        (
            Signal("email", T0, None, "SMTP refused a***@x.de: 550 mailbox unavailable"),
            "smtp_rejected",
        ),
        (Signal("email", T0, None, "SMTP relay cannot deliver to a***@x.de"), "smtp_rejected"),
        (Signal("sms", T0, None, "sms gateway refused +49170*****67: 401"), "sms_gateway_failed"),
        (Signal("whatsapp", T0, None, "timeout"), "whatsapp_gateway_failed"),
        (Signal("retell", T0, 401, "retell_signature_invalid"), "retell_signature"),
        (
            Signal("booking", T0, None, "policy_unavailable: down", "policy_unavailable"),
            "policy_unreachable",
        ),
        (Signal("booking", T0, None, "database_error: locked", "database_error"), "database_error"),
        (
            Signal(
                "booking",
                T0,
                None,
                "service_unavailable: Cal.com answered 503",
                "service_unavailable",
            ),
            "calcom_unreachable",
        ),
        (
            Signal("booking", T0, None, "internal_error: KeyError", "internal_error"),
            "booking_error",
        ),
    ],
)
def test_each_failure_has_its_cause(signal: Signal, cause: str) -> None:
    assert classify(signal) == cause


def test_groups_count_and_span_their_signals() -> None:
    signals = [
        Signal("calcom", T0, 401, "first 401"),
        Signal("sync", T0 + timedelta(minutes=5), None, "CalcomRejected: Cal.com answered 401"),
        Signal("calcom", T0 - timedelta(hours=2), 401, "oldest 401"),
        Signal("email", T0 + timedelta(hours=1), None, "SMTP refused a***@x.de: 550"),
        Signal("sms", T0, None, "gateway 500"),
    ]
    groups = group(signals)
    assert [(g.key, g.count) for g in groups] == [
        ("calcom_auth", 3),
        ("smtp_rejected", 1),  # equal counts: in the order of CAUSES
        ("sms_gateway_failed", 1),
    ]
    auth = groups[0]
    assert (auth.first_seen, auth.last_seen) == (T0 - timedelta(hours=2), T0 + timedelta(minutes=5))
    assert auth.example == "CalcomRejected: Cal.com answered 401"  # the newest one's text
    assert group([]) == []


def test_both_languages_have_the_same_labels_and_every_cause_is_worded() -> None:
    assert set(LABELS) == {"de", "en"}
    assert set(LABELS["de"]) == set(LABELS["en"])
    assert set(CAUSE_KEYS) <= set(LABELS["en"])
    assert len(CAUSE_KEYS) == 2 * len(CAUSES)
    same = [k for k in LABELS["en"] if LABELS["en"][k] == LABELS["de"][k]]
    # Only words that are the same in both languages (names, "Status", "normal") stay equal.
    assert set(same) <= {
        "calcom.title",
        "col.status",
        "col.calendar",
        "col.details",
        "syncstate.synced",
        "priority.normal",
    }
    assert LABELS["en"]["fix.calcom_auth"] == (
        "Cal.com rejects the API key: renew it under Integrations."
    )


@pytest.mark.parametrize(
    ("requested", "header", "tz", "expected"),
    [
        ("en", "de-DE,de;q=0.9", "Europe/Berlin", "en"),
        ("de", None, "America/New_York", "de"),
        ("fr", "de-DE,de;q=0.9,en;q=0.8", "UTC", "de"),
        (None, "en-US,en;q=0.9,de;q=0.8", "Europe/Berlin", "en"),
        (None, "fr-FR,en;q=0.5,de;q=0.7", "UTC", "de"),
        (None, "fr-FR", "Europe/Vienna", "de"),
        (None, "de;q=0", "America/Chicago", "en"),
        (None, None, "Europe/Berlin", "de"),
        (None, "", "Asia/Tokyo", "en"),
        (None, "de;q=abc,en", None, "en"),
    ],
)
def test_language_choice(
    requested: str | None, header: str | None, tz: str | None, expected: str
) -> None:
    assert choose_language(requested, header, tz) == expected


def test_dates_per_language_in_the_zone() -> None:
    berlin = zone_of("Europe/Berlin")
    de, en = Formatter("de", berlin), Formatter("en", berlin)
    assert de.when(T0) == "Mo, 07.12.2026, 14:30"
    assert en.when(T0) == "Mon, 07 Dec 2026, 14:30"
    assert de.when("2026-12-07T14:30:00+01:00") == "Mo, 07.12.2026, 14:30"
    assert de.when(T0.replace(tzinfo=None)) == "Mo, 07.12.2026, 14:30"  # naive is UTC
    assert de.time(T0, "Europe/London") == "13:30"
    assert en.stamp(T0 + timedelta(seconds=7)) == "14:30:07"
    assert de.when(None) == "\u2013"


def test_headline_is_green_only_when_every_attempt_fully_succeeded() -> None:
    en = Formatter("en", UTC)
    de = Formatter("de", UTC)
    figures = {"sync_failed": 1, "sync_waiting": 0, "confirmations": 1, "failed": 0, "refused": 0}
    assert headline(en, attempts=8, fully=6, **figures) == (
        "bad",
        "6 of 8 bookings fully succeeded: 1 did not reach Cal.com, confirmation not sent for 1",
    )
    assert headline(de, attempts=8, fully=6, **figures)[1] == (
        "6 von 8 Buchungen vollständig erfolgreich: 1 nicht bei Cal.com angekommen, "
        "Bestätigung für 1 nicht zugestellt"
    )
    clean = dict.fromkeys(figures, 0)
    assert headline(en, attempts=3, fully=3, **clean) == ("ok", "3 of 3 bookings fully succeeded")
    late = {**clean, "sync_waiting": 1}
    assert headline(en, attempts=10, fully=9, **late) == (
        "warn",
        "9 of 10 bookings fully succeeded: 1 still waiting for Cal.com",
    )
    assert headline(de, attempts=0, fully=0, **clean) == (
        "none",
        "Heute noch keine Buchungsversuche",
    )
