"""German sentences for the phone agent, pure: exact wording, DST, money, lists, every outcome."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.booking.agent import speech
from services.booking.agent.speech import (
    ASK_FIELDS,
    MAX_MESSAGE_CHARS,
    REASON_CODES,
    appointment_not_found,
    appointments_list,
    ask_for,
    booked,
    callback_created,
    cancel_not_allowed,
    cancelled,
    needs_callback,
    no_appointments_found,
    no_slots,
    rate_limited,
    rescheduled,
    service_unavailable,
    slot_taken_with_alternatives,
    slots_available,
    spoken_date,
    spoken_datetime,
    spoken_list,
    spoken_money,
    spoken_time,
)
from services.policy.evaluation import Reason

TZ = "Europe/Berlin"
# Tuesday 24 November 2026, Berlin is UTC+1.
T10 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 local
T1030 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
T11 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WED9 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # Wednesday 09:00 local
TAKEN = "Der Termin am Dienstag, 24. November um 10:00 Uhr ist leider schon vergeben."


# --- dates, times, money, lists -------------------------------------------------------------


def test_spoken_datetime_in_local_time() -> None:
    instant = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
    assert spoken_datetime(instant, TZ) == "Dienstag, 24. November um 14:30 Uhr"
    assert spoken_datetime(instant, TZ, with_year=True) == (
        "Dienstag, 24. November 2026 um 14:30 Uhr"
    )
    assert spoken_datetime(instant, ZoneInfo("Europe/Zurich")) == (
        "Dienstag, 24. November um 14:30 Uhr"
    )
    assert spoken_datetime(instant, "America/New_York") == "Dienstag, 24. November um 08:30 Uhr"


def test_naive_instants_are_taken_as_utc() -> None:
    naive = datetime(2026, 11, 24, 13, 30)
    assert spoken_datetime(naive, TZ) == "Dienstag, 24. November um 14:30 Uhr"


def test_day_without_leading_zero_and_local_date_across_midnight() -> None:
    assert spoken_datetime(datetime(2026, 3, 1, 8, 5, tzinfo=UTC), TZ) == (
        "Sonntag, 1. März um 09:05 Uhr"
    )
    # 23:30 UTC on 31 December is already New Year in Berlin.
    assert spoken_datetime(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), TZ, with_year=True) == (
        "Freitag, 1. Januar 2027 um 00:30 Uhr"
    )


def test_dst_autumn_day_in_berlin() -> None:
    # 2026-10-25: clocks go back 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    assert spoken_datetime(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), TZ) == (
        "Sonntag, 25. Oktober um 02:30 Uhr"
    )
    assert spoken_datetime(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), TZ) == (
        "Sonntag, 25. Oktober um 02:30 Uhr"
    )
    assert spoken_datetime(datetime(2026, 10, 24, 8, 0, tzinfo=UTC), TZ) == (
        "Samstag, 24. Oktober um 10:00 Uhr"
    )
    assert spoken_datetime(datetime(2026, 10, 25, 9, 0, tzinfo=UTC), TZ) == (
        "Sonntag, 25. Oktober um 10:00 Uhr"
    )


def test_dst_spring_day_in_berlin() -> None:
    # 2026-03-29: 02:00 CET -> 03:00 CEST.
    assert spoken_datetime(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), TZ) == (
        "Sonntag, 29. März um 01:59 Uhr"
    )
    assert spoken_datetime(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), TZ) == (
        "Sonntag, 29. März um 03:00 Uhr"
    )


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 23), "Montag, 23. November"),
        (date(2026, 11, 24), "Dienstag, 24. November"),
        (date(2026, 11, 25), "Mittwoch, 25. November"),
        (date(2026, 11, 26), "Donnerstag, 26. November"),
        (date(2026, 11, 27), "Freitag, 27. November"),
        (date(2026, 11, 28), "Samstag, 28. November"),
        (date(2026, 11, 29), "Sonntag, 29. November"),
    ],
)
def test_weekday_names(day: date, expected: str) -> None:
    assert spoken_date(day) == expected


@pytest.mark.parametrize(
    ("month", "name"),
    list(
        enumerate(
            [
                "Januar", "Februar", "März", "April", "Mai", "Juni",
                "Juli", "August", "September", "Oktober", "November", "Dezember",
            ],
            start=1,
        )
    ),
)  # fmt: skip
def test_month_names(month: int, name: str) -> None:
    day = date(2026, month, 2)
    assert spoken_date(day).endswith(f", 2. {name}")
    assert spoken_date(day, with_year=True).endswith(f", 2. {name} 2026")


def test_spoken_time_is_24_hour_with_two_digits() -> None:
    assert spoken_time(time(14, 30)) == "14:30 Uhr"
    assert spoken_time(time(9, 5)) == "09:05 Uhr"
    assert spoken_time(time(0, 0)) == "00:00 Uhr"
    assert spoken_time(time(23, 59, 59)) == "23:59 Uhr"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("15"), "EUR", "15,00 Euro"),
        (Decimal("1234.5"), "EUR", "1.234,50 Euro"),
        (Decimal("0.5"), "EUR", "0,50 Euro"),
        (Decimal("12.345"), "EUR", "12,35 Euro"),  # half up
        (Decimal("1234567.891"), "EUR", "1.234.567,89 Euro"),
        (Decimal("30.00"), "CHF", "30,00 Franken"),
        (Decimal("30"), "chf", "30,00 Franken"),
        (Decimal("9.99"), "USD", "9,99 USD"),
        (7, "EUR", "7,00 Euro"),
    ],
)
def test_spoken_money(amount: Decimal, currency: str, expected: str) -> None:
    assert spoken_money(amount, currency) == expected


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
def test_spoken_money_reads_back_to_the_amount(amount: Decimal) -> None:
    digits, unit = spoken_money(amount, "EUR").split(" ")
    assert unit == "Euro"
    assert Decimal(digits.replace(".", "").replace(",", ".")) == amount


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], ""),
        (["A"], "A"),
        (["A", "B"], "A oder B"),
        (["A", "B", "C"], "A, B oder C"),
        (["A", "B", "C", "D"], "A, B, C oder D"),
    ],
)
def test_spoken_list(items: list[str], expected: str) -> None:
    assert spoken_list(items) == expected


def test_spoken_list_with_und() -> None:
    assert spoken_list(["A", "B", "C"], "und") == "A, B und C"


# --- availability ---------------------------------------------------------------------------


def test_slots_on_one_day_name_the_day_once() -> None:
    message = slots_available("Herrenhaarschnitt", [(T10, "Anna"), (T1030, "Lukas"), T11], TZ)
    assert message == (
        "Für Herrenhaarschnitt habe ich am Dienstag, 24. November folgende freie Termine: "
        "10:00 Uhr bei Anna, 10:30 Uhr bei Lukas oder 11:00 Uhr. Welcher passt Ihnen?"
    )


def test_slots_on_several_days_name_each_day() -> None:
    message = slots_available("Herrenhaarschnitt", [(T10, "Anna"), (WED9, "Lukas")], TZ)
    assert message == (
        "Für Herrenhaarschnitt habe ich folgende freie Termine: "
        "Dienstag, 24. November um 10:00 Uhr bei Anna oder "
        "Mittwoch, 25. November um 09:00 Uhr bei Lukas. Welcher passt Ihnen?"
    )


def test_single_slot() -> None:
    assert slots_available("Färben", [(T10, "Anna")], TZ) == (
        "Für Färben habe ich am Dienstag, 24. November um 10:00 Uhr bei Anna einen freien "
        "Termin. Passt Ihnen das?"
    )


def test_no_slot_at_all() -> None:
    assert slots_available("Färben", [], TZ) == (
        "Für Färben habe ich leider keinen freien Termin gefunden. "
        "Soll ich an einem anderen Tag nachsehen?"
    )
    assert no_slots("Färben", date(2026, 11, 24)) == (
        "Für Färben habe ich am Dienstag, 24. November leider keinen freien Termin mehr. "
        "Soll ich an einem anderen Tag nachsehen?"
    )


def test_long_slot_lists_are_cut_to_fit() -> None:
    slots = [(T10 + timedelta(days=i), "Anna Schmidt") for i in range(8)]
    message = slots_available("Herrenhaarschnitt", slots, TZ)
    assert len(message) < MAX_MESSAGE_CHARS
    assert message.startswith("Für Herrenhaarschnitt habe ich folgende freie Termine: ")
    assert "Dienstag, 24. November um 10:00 Uhr bei Anna Schmidt, " in message
    assert message.endswith(". Welcher passt Ihnen?")
    assert "1. Dezember" not in message  # beyond MAX_SPOKEN_SLOTS


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüß ", min_size=1, max_size=20)
starts = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@given(
    service=names,
    slots=st.lists(st.tuples(starts, st.one_of(st.none(), names)), max_size=10),
)
def test_offers_stay_short(service: str, slots: list[tuple[datetime, str | None]]) -> None:
    assert len(slots_available(service, slots, TZ)) < MAX_MESSAGE_CHARS
    assert len(slot_taken_with_alternatives(T10, slots, TZ)) < MAX_MESSAGE_CHARS
    listed = [(start, service, staff) for start, staff in slots]
    assert len(appointments_list(listed, TZ)) < MAX_MESSAGE_CHARS


# --- booking --------------------------------------------------------------------------------


def test_booked() -> None:
    assert booked("Herrenhaarschnitt", T10, "Anna", TZ) == (
        "Ihr Termin für Herrenhaarschnitt am Dienstag, 24. November um 10:00 Uhr bei Anna "
        "ist gebucht."
    )
    assert booked("Färben", T10, None, TZ) == (
        "Ihr Termin für Färben am Dienstag, 24. November um 10:00 Uhr ist gebucht."
    )


def test_slot_taken_one_alternative_same_day() -> None:
    assert slot_taken_with_alternatives(T10, [(T1030, "Anna")], TZ) == (
        f"{TAKEN} Ich könnte Ihnen stattdessen einen Termin am selben Tag um 10:30 Uhr bei Anna "
        "anbieten. Passt Ihnen das?"
    )


def test_slot_taken_alternatives_same_day() -> None:
    assert slot_taken_with_alternatives(T10, [T1030, (T11, "Lukas")], TZ) == (
        f"{TAKEN} Ich könnte Ihnen am selben Tag folgende Termine anbieten: "
        "10:30 Uhr oder 11:00 Uhr bei Lukas. Welcher passt Ihnen?"
    )


def test_slot_taken_alternatives_next_day() -> None:
    assert slot_taken_with_alternatives(T10, [WED9], TZ) == (
        f"{TAKEN} Ich könnte Ihnen stattdessen einen Termin am Mittwoch, 25. November "
        "um 09:00 Uhr anbieten. Passt Ihnen das?"
    )
    assert slot_taken_with_alternatives(T10, [WED9, WED9 + timedelta(hours=1)], TZ) == (
        f"{TAKEN} Ich könnte Ihnen am Mittwoch, 25. November folgende Termine anbieten: "
        "09:00 Uhr oder 10:00 Uhr. Welcher passt Ihnen?"
    )


def test_slot_taken_alternatives_on_several_days() -> None:
    assert slot_taken_with_alternatives(T10, [T1030, WED9], TZ) == (
        f"{TAKEN} Ich könnte Ihnen folgende Termine anbieten: Dienstag, 24. November um "
        "10:30 Uhr oder Mittwoch, 25. November um 09:00 Uhr. Welcher passt Ihnen?"
    )


def test_slot_taken_without_alternatives() -> None:
    assert slot_taken_with_alternatives(T10, [], TZ) == (
        f"{TAKEN} Einen anderen freien Termin habe ich leider nicht gefunden. "
        "Möchten Sie es an einem anderen Tag versuchen?"
    )


# --- cancel and reschedule ------------------------------------------------------------------


def test_cancelled() -> None:
    assert cancelled(T10, TZ) == "Ihr Termin am Dienstag, 24. November um 10:00 Uhr ist storniert."
    assert cancelled(T10, TZ, Decimal("15")) == (
        "Ihr Termin am Dienstag, 24. November um 10:00 Uhr ist storniert. "
        "Dafür fällt eine Gebühr von 15,00 Euro an."
    )
    assert cancelled(T10, TZ, Decimal("0.00")) == cancelled(T10, TZ)
    assert cancelled(T10, TZ, Decimal("20"), currency="CHF", service_name="Färben") == (
        "Ihr Termin für Färben am Dienstag, 24. November um 10:00 Uhr ist storniert. "
        "Dafür fällt eine Gebühr von 20,00 Franken an."
    )


def test_rescheduled() -> None:
    assert rescheduled(T10, WED9, TZ) == (
        "Ich habe Ihren Termin von Dienstag, 24. November um 10:00 Uhr auf "
        "Mittwoch, 25. November um 09:00 Uhr verschoben."
    )
    assert rescheduled(T10, T11, TZ, Decimal("10")) == (
        "Ich habe Ihren Termin am Dienstag, 24. November von 10:00 Uhr auf 11:00 Uhr "
        "verschoben. Dafür fällt eine Gebühr von 10,00 Euro an."
    )


def test_reason_codes_are_the_policy_services() -> None:
    assert set(REASON_CODES) == {reason.value for reason in Reason}


@pytest.mark.parametrize("action", ["cancel", "reschedule"])
@pytest.mark.parametrize("code", REASON_CODES)
def test_every_reason_code_has_its_own_message(code: str, action: speech.Action) -> None:
    plain = cancel_not_allowed(code, action=action)
    dated = cancel_not_allowed(code, T10 - timedelta(hours=24), Decimal("15"), tz_name=TZ)
    fallback = cancel_not_allowed("no_such_reason", action=action)
    for message in (plain, dated):
        assert message != fallback
        assert message.endswith((".", "?"))
        assert len(message) < MAX_MESSAGE_CHARS
        assert "{" not in message


EXPECTED_REASONS = {
    "ok": "Sie können den Termin kostenlos stornieren.",
    "late_fee": (
        "Für eine so kurzfristige Stornierung fällt eine Gebühr von 15,00 Euro an. "
        "Möchten Sie den Termin trotzdem stornieren?"
    ),
    "deadline_passed": (
        "Leider kann ich den Termin so kurzfristig nicht mehr stornieren. "
        "Soll ich einen Rückruf veranlassen?"
    ),
    "appointment_in_past": (
        "Dieser Termin liegt bereits in der Vergangenheit und kann nicht mehr storniert werden."
    ),
    "not_modifiable": "Dieser Termin ist nicht mehr aktiv und kann daher nicht storniert werden.",
    "quota_exceeded": (
        "Sie haben in letzter Zeit bereits mehrere Termine geändert, deshalb kann ich diesen "
        "Termin leider nicht stornieren. Soll ich einen Rückruf veranlassen?"
    ),
    "max_reschedules_reached": (
        "Dieser Termin kann leider nicht noch einmal verschoben werden, weil die Höchstzahl an "
        "Verschiebungen erreicht ist. Soll ich einen Rückruf veranlassen?"
    ),
}


@pytest.mark.parametrize(("code", "expected"), EXPECTED_REASONS.items())
def test_reason_messages(code: str, expected: str) -> None:
    assert cancel_not_allowed(code, fee=Decimal("15")) == expected


def test_reason_messages_with_deadline() -> None:
    deadline = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert cancel_not_allowed("ok", deadline, tz_name=TZ) == (
        "Sie können den Termin bis Montag, 23. November um 10:00 Uhr kostenlos stornieren."
    )
    assert cancel_not_allowed("late_fee", deadline, Decimal("15"), tz_name=TZ) == (
        "Eine kostenlose Stornierung war nur bis Montag, 23. November um 10:00 Uhr möglich, "
        "jetzt fällt eine Gebühr von 15,00 Euro an. Möchten Sie den Termin trotzdem stornieren?"
    )
    assert cancel_not_allowed("deadline_passed", deadline, tz_name=TZ, action="reschedule") == (
        "Leider kann ich den Termin nicht mehr verschieben, das war nur bis Montag, "
        "23. November um 10:00 Uhr möglich. Soll ich einen Rückruf veranlassen?"
    )
    # A deadline adds nothing to reasons that do not depend on it.
    assert (
        cancel_not_allowed("not_modifiable", deadline, tz_name=TZ)
        == (EXPECTED_REASONS["not_modifiable"])
    )


def test_reason_messages_for_reschedule_and_unknown_codes() -> None:
    assert cancel_not_allowed("late_fee", action="reschedule") == (
        "Für eine so kurzfristige Verschiebung fällt eine Gebühr an. "
        "Möchten Sie den Termin trotzdem verschieben?"
    )
    assert cancel_not_allowed("something_new") == (
        "Diesen Termin kann ich leider nicht stornieren. Soll ich einen Rückruf veranlassen?"
    )


def test_a_deadline_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="tz_name"):
        cancel_not_allowed("ok", T10)


# --- appointments, callbacks, errors --------------------------------------------------------


def test_appointments_list() -> None:
    assert appointments_list([(T10, "Färben", "Anna")], TZ) == (
        "Ich habe einen Termin für Sie gefunden: "
        "Färben am Dienstag, 24. November um 10:00 Uhr bei Anna."
    )
    assert appointments_list([(T10, "Färben", "Anna"), (WED9, "Bartpflege", None)], TZ) == (
        "Ich habe zwei Termine für Sie gefunden: Färben am Dienstag, 24. November um "
        "10:00 Uhr bei Anna und Bartpflege am Mittwoch, 25. November um 09:00 Uhr."
    )


def test_long_appointment_lists_name_the_next_ones() -> None:
    many = [(T10 + timedelta(days=i), "Färben", None) for i in range(5)]
    assert appointments_list(many, TZ) == (
        "Ich habe fünf Termine für Sie gefunden, die nächsten drei sind: "
        "Färben am Dienstag, 24. November um 10:00 Uhr, "
        "Färben am Mittwoch, 25. November um 10:00 Uhr und "
        "Färben am Donnerstag, 26. November um 10:00 Uhr."
    )


def test_no_appointments() -> None:
    expected = (
        "Unter Ihrer Telefonnummer habe ich keine anstehenden Termine gefunden. "
        "Möchten Sie einen neuen Termin vereinbaren?"
    )
    assert no_appointments_found() == expected
    assert appointments_list([], TZ) == expected
    assert appointment_not_found() == (
        "Unter Ihrer Telefonnummer habe ich leider keinen passenden Termin gefunden. "
        "Können Sie mir bitte das Datum und die Uhrzeit Ihres Termins nennen?"
    )


def test_callbacks() -> None:
    assert callback_created() == (
        "Ich habe einen Rückruf für Sie veranlasst. "
        "Unser Team meldet sich so bald wie möglich bei Ihnen."
    )
    assert callback_created("  ") == callback_created()
    assert callback_created("morgen Vormittag") == (
        "Ich habe einen Rückruf für Sie veranlasst und als Wunschzeit morgen Vormittag notiert. "
        "Unser Team meldet sich bei Ihnen."
    )
    assert callback_created("x" * 400) == callback_created()
    assert needs_callback() == (
        "Das kann ich am Telefon leider nicht direkt erledigen. "
        "Soll ich einen Rückruf durch unser Team veranlassen?"
    )


def test_rate_limited_and_unavailable() -> None:
    assert rate_limited() == "Einen Moment bitte, ich versuche es gleich noch einmal."
    assert service_unavailable() == (
        "Entschuldigung, ich kann das gerade nicht erledigen, soll ich einen Rückruf veranlassen?"
    )


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("missing_service", "Für welche Leistung möchten Sie einen Termin?"),
        (
            "unknown_service",
            "Diese Leistung habe ich leider nicht gefunden. Welche Leistung möchten Sie?",
        ),
        (
            "date_in_past",
            "Dieser Zeitpunkt liegt leider schon in der Vergangenheit. "
            "Für welchen Tag darf ich nachsehen?",
        ),
        (
            "beyond_booking_window",
            "So weit im Voraus kann ich leider noch keine Termine vergeben. "
            "Für welchen früheren Tag darf ich nachsehen?",
        ),
        (
            "outside_opening_hours",
            "Zu dieser Zeit haben wir leider geschlossen. Wann würde es Ihnen sonst passen?",
        ),
        ("missing_customer_name", "Auf welchen Namen darf ich den Termin eintragen?"),
        (
            "ambiguous",
            "Das habe ich leider nicht eindeutig verstanden. Können Sie es bitte genauer sagen?",
        ),
    ],
)
def test_ask_for(field: speech.AskField, expected: str) -> None:
    assert ask_for(field) == expected


def test_ask_for_ambiguous_names_the_candidates() -> None:
    assert ask_for("ambiguous", candidates=["Herrenhaarschnitt", "Damenhaarschnitt"]) == (
        "Meinten Sie Herrenhaarschnitt oder Damenhaarschnitt?"
    )
    assert ask_for("ambiguous", candidates=["A", "B", "C"]) == "Meinten Sie A, B oder C?"
    seven = [f"Name{i}" for i in range(7)]
    assert ask_for("ambiguous", candidates=seven) == (
        "Meinten Sie Name0, Name1, Name2, Name3 oder Name4?"
    )


def test_ask_for_unknown_offers_choices_and_window_names_last_day() -> None:
    assert ask_for("unknown_service", candidates=["Färben", "Bartpflege"]) == (
        "Diese Leistung habe ich leider nicht gefunden. Zur Auswahl stehen Färben und "
        "Bartpflege. Welche Leistung möchten Sie?"
    )
    assert ask_for("unknown_staff", candidates=["Anna Schmidt"]) == (
        "Diesen Namen habe ich in unserem Team leider nicht gefunden. Zur Auswahl steht "
        "Anna Schmidt. Bei wem möchten Sie den Termin?"
    )
    assert ask_for("beyond_booking_window", last_day=date(2027, 1, 22)) == (
        "So weit im Voraus kann ich leider noch keine Termine vergeben. Termine sind bis "
        "Freitag, 22. Januar möglich. Für welchen früheren Tag darf ich nachsehen?"
    )


@pytest.mark.parametrize("field", ASK_FIELDS)
def test_every_ask_field_is_a_polite_short_sentence(field: speech.AskField) -> None:
    for message in (ask_for(field), ask_for(field, candidates=["Färben", "Bartpflege"])):
        assert message.endswith("?")
        assert len(message) < MAX_MESSAGE_CHARS
        assert "{" not in message
        assert message != ask_for("no_such_field")  # type: ignore[arg-type]
