"""The ops page's words in German and English, its language choice and its date formats
(pure). Every label of the page comes from `LABELS`; both languages have the same keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from services.booking.ops.causes import CAUSES
from shared.local_time import zone_of

LANGUAGES = ("de", "en")

_EN: dict[str, str] = {
    "title": "Operations",
    "sign_out": "Sign out",
    "as_of": "As of {when}, times in {tz}",
    "overview": "Overview",
    "headline.none": "No bookings attempted today",
    "headline": "{ok} of {total} bookings fully succeeded",
    "reason.sync_failed": "{n} did not reach Cal.com",
    "reason.sync_waiting": "{n} still waiting for Cal.com",
    "reason.confirmation": "confirmation not sent for {n}",
    "reason.failed": "{n} failed with an error",
    "reason.refused": "{n} refused (database unavailable)",
    "today.title": "Bookings today",
    "today.attempts": "Attempts",
    "today.booked": "Booked",
    "today.failed": "Failed attempts",
    "today.sync_failed": "Not in Cal.com",
    "today.confirmations_failed": "Confirmation not sent",
    "today.refused": "Refused (database down)",
    "today.refused_unread": "unreadable",
    "sync.title": "Cal.com sync backlog",
    "sync.pending": "Appointments pending",
    "sync.oldest": "Oldest",
    "webhooks.title": "Webhook backlog",
    "webhooks.failed": "Failed",
    "webhooks.oldest": "Oldest pending",
    "calcom.title": "Cal.com",
    "calcom.connected": "connected",
    "calcom.failing": "failing",
    "calcom.not_configured": "not configured",
    "calcom.breaker": "Circuit breaker",
    "breaker.closed": "closed",
    "breaker.open": "open",
    "breaker.half_open": "half-open",
    "callbacks.title": "Callbacks",
    "callbacks.open": "Open",
    "callbacks.overdue": "Overdue",
    "callbacks.none": "No open callbacks.",
    "callbacks.unassigned": "unassigned",
    "col.time": "Time",
    "col.service": "Service",
    "col.customer": "Customer",
    "col.phone": "Phone",
    "col.reference": "Reference",
    "col.status": "Status",
    "col.calendar": "Cal.com",
    "col.reason": "Reason",
    "col.requested": "Requested",
    "col.due": "Due by",
    "col.assignee": "Assignee",
    "col.cause": "Cause",
    "col.count": "Count",
    "col.first_seen": "First seen",
    "col.last_seen": "Last seen",
    "col.example": "Example",
    "col.fix": "What to do",
    "col.when": "When",
    "col.source": "Source",
    "col.what": "What",
    "col.details": "Details",
    "schedule.title": "Today's schedule",
    "schedule.none": "No appointments today.",
    "schedule.free": "No appointments.",
    "status.confirmed": "confirmed",
    "status.pending": "pending",
    "status.completed": "completed",
    "status.no_show": "no-show",
    "syncstate.synced": "in Cal.com",
    "syncstate.pending": "waiting",
    "syncstate.failed": "failed",
    "syncstate.local_only": "local",
    "priority.normal": "normal",
    "priority.high": "high",
    "priority.urgent": "urgent",
    "integrations.title": "Failing integrations, last 24 h",
    "integrations.none": "No integration failed in the last 24 hours.",
    "failed.title": "Failed bookings, last {hours} h",
    "messages.title": "Last messages",
    "messages.caught": "Caught by the development outbox, nothing was sent:",
    "messages.all": "all messages",
    "messages.none": "No messages yet.",
    "messages.when": "When",
    "messages.channel": "Channel",
    "messages.to": "To",
    "messages.event": "Event",
    "messages.text": "Message",
    "messages.unavailable": "text not available",
    "failed.show": "Show",
    "failed.hours": "Hours",
    "failed.none": "No failed bookings since {when}.",
    "failed.kind.sync_failed": "sync failed",
    "failed.kind.booking_error": "booking error",
    "failed.correlation": "correlation",
    "failed.call": "call",
    "failed.appointment": "appointment",
    "failed.via": "via",
    "failed.with": "with",
    "failed.truncated": "Older entries left out.",
    "charts.title": "Last 30 days",
    "login.title": "Sign in",
    "login.heading": "Operator sign-in",
    "login.key": "API key (operator scope)",
    "login.submit": "Sign in",
    "login.hint": "API clients may send <code>Authorization: Bearer &lt;key&gt;</code> instead.",
    "login.invalid": "The key is invalid or lacks the operator scope.",
    "login.ended": "The session has ended: sign in again.",
    "cause.calcom_auth": "Cal.com rejects the API key (401/403)",
    "cause.calcom_unreachable": "Cal.com unreachable (timeouts, 5xx, paused)",
    "cause.calcom_rate_limited": "Cal.com rate limit reached (429)",
    "cause.calcom_rejected": "Cal.com refused a request",
    "cause.smtp_unreachable": "Mail server unreachable",
    "cause.smtp_rejected": "Mail server refused a message",
    "cause.sms_gateway_failed": "SMS gateway failed",
    "cause.whatsapp_gateway_failed": "WhatsApp gateway failed",
    "cause.retell_signature": "Retell signature refused",
    "cause.policy_unreachable": "Policy service unavailable",
    "cause.database_error": "Database error",
    "cause.booking_error": "Booking failed with an error",
    "fix.calcom_auth": "Cal.com rejects the API key: renew it under Integrations.",
    "fix.calcom_unreachable": (
        "Cal.com did not answer: check its status page and the network; the sync retries by itself."
    ),
    "fix.calcom_rate_limited": (
        "Too many calls to Cal.com: they are retried later; raise the plan's limit if it "
        "keeps happening."
    ),
    "fix.calcom_rejected": (
        "Cal.com refused the booking: check the service's event type and the staff "
        "member's Cal.com user."
    ),
    "fix.smtp_unreachable": (
        "The mail server cannot be reached: check SMTP host, port and credentials."
    ),
    "fix.smtp_rejected": (
        "The mail server refuses the message: check the sender address and the recipient."
    ),
    "fix.sms_gateway_failed": "Check the SMS provider's credentials and account balance.",
    "fix.whatsapp_gateway_failed": (
        "Check the WhatsApp provider's credentials and approved templates."
    ),
    "fix.retell_signature": (
        "Calls are refused: copy the Retell API key again under Integrations."
    ),
    "fix.policy_unreachable": "The policy service is down: restart it or check its logs.",
    "fix.database_error": "The database refused a write: check its logs and free disk space.",
    "fix.booking_error": "See the failed bookings below for each attempt's timeline.",
}

_DE: dict[str, str] = {
    "title": "Betrieb",
    "sign_out": "Abmelden",
    "as_of": "Stand {when}, Zeiten in {tz}",
    "overview": "Überblick",
    "headline.none": "Heute noch keine Buchungsversuche",
    "headline": "{ok} von {total} Buchungen vollständig erfolgreich",
    "reason.sync_failed": "{n} nicht bei Cal.com angekommen",
    "reason.sync_waiting": "{n} warten noch auf Cal.com",
    "reason.confirmation": "Bestätigung für {n} nicht zugestellt",
    "reason.failed": "{n} mit Fehler abgebrochen",
    "reason.refused": "{n} abgelehnt (Datenbank nicht erreichbar)",
    "today.title": "Buchungen heute",
    "today.attempts": "Versuche",
    "today.booked": "Gebucht",
    "today.failed": "Fehlgeschlagen",
    "today.sync_failed": "Nicht in Cal.com",
    "today.confirmations_failed": "Bestätigung nicht zugestellt",
    "today.refused": "Abgelehnt (Datenbank aus)",
    "today.refused_unread": "nicht lesbar",
    "sync.title": "Cal.com-Synchronisierung",
    "sync.pending": "Termine ausstehend",
    "sync.oldest": "Älteste",
    "webhooks.title": "Webhook-Rückstand",
    "webhooks.failed": "Fehlgeschlagen",
    "webhooks.oldest": "Älteste offene",
    "calcom.title": "Cal.com",
    "calcom.connected": "verbunden",
    "calcom.failing": "gestört",
    "calcom.not_configured": "nicht eingerichtet",
    "calcom.breaker": "Schutzschalter",
    "breaker.closed": "geschlossen",
    "breaker.open": "offen",
    "breaker.half_open": "halb offen",
    "callbacks.title": "Rückrufe",
    "callbacks.open": "Offen",
    "callbacks.overdue": "Überfällig",
    "callbacks.none": "Keine offenen Rückrufe.",
    "callbacks.unassigned": "nicht zugewiesen",
    "col.time": "Zeit",
    "col.service": "Leistung",
    "col.customer": "Kunde",
    "col.phone": "Telefon",
    "col.reference": "Buchungsnummer",
    "col.status": "Status",
    "col.calendar": "Cal.com",
    "col.reason": "Anliegen",
    "col.requested": "Angefragt",
    "col.due": "Fällig bis",
    "col.assignee": "Zuständig",
    "col.cause": "Ursache",
    "col.count": "Anzahl",
    "col.first_seen": "Zuerst",
    "col.last_seen": "Zuletzt",
    "col.example": "Beispiel",
    "col.fix": "Was tun",
    "col.when": "Wann",
    "col.source": "Quelle",
    "col.what": "Was",
    "col.details": "Details",
    "schedule.title": "Terminplan heute",
    "schedule.none": "Heute keine Termine.",
    "schedule.free": "Keine Termine.",
    "status.confirmed": "bestätigt",
    "status.pending": "vorläufig",
    "status.completed": "erledigt",
    "status.no_show": "nicht erschienen",
    "syncstate.synced": "in Cal.com",
    "syncstate.pending": "wartet",
    "syncstate.failed": "fehlgeschlagen",
    "syncstate.local_only": "lokal",
    "priority.normal": "normal",
    "priority.high": "hoch",
    "priority.urgent": "dringend",
    "integrations.title": "Gestörte Integrationen, letzte 24 h",
    "integrations.none": "Keine Integration ist in den letzten 24 Stunden ausgefallen.",
    "failed.title": "Fehlgeschlagene Buchungen, letzte {hours} h",
    "messages.title": "Letzte Nachrichten",
    "messages.caught": "Vom Entwicklungs-Postausgang abgefangen, nichts wurde versandt:",
    "messages.all": "alle Nachrichten",
    "messages.none": "Noch keine Nachrichten.",
    "messages.when": "Wann",
    "messages.channel": "Kanal",
    "messages.to": "An",
    "messages.event": "Ereignis",
    "messages.text": "Nachricht",
    "messages.unavailable": "Text nicht verfügbar",
    "failed.show": "Anzeigen",
    "failed.hours": "Stunden",
    "failed.none": "Keine fehlgeschlagenen Buchungen seit {when}.",
    "failed.kind.sync_failed": "Sync fehlgeschlagen",
    "failed.kind.booking_error": "Buchungsfehler",
    "failed.correlation": "Korrelation",
    "failed.call": "Anruf",
    "failed.appointment": "Termin",
    "failed.via": "über",
    "failed.with": "bei",
    "failed.truncated": "Ältere Einträge ausgelassen.",
    "charts.title": "Letzte 30 Tage",
    "login.title": "Anmelden",
    "login.heading": "Anmeldung für Betreiber",
    "login.key": "API-Schlüssel (Bereich operator)",
    "login.submit": "Anmelden",
    "login.hint": (
        "API-Clients können stattdessen <code>Authorization: Bearer &lt;key&gt;</code> senden."
    ),
    "login.invalid": "Der Schlüssel ist ungültig oder hat nicht den Bereich operator.",
    "login.ended": "Die Sitzung ist beendet: bitte erneut anmelden.",
    "cause.calcom_auth": "Cal.com lehnt den API-Schlüssel ab (401/403)",
    "cause.calcom_unreachable": "Cal.com nicht erreichbar (Zeitüberschreitung, 5xx, pausiert)",
    "cause.calcom_rate_limited": "Cal.com-Anfragelimit erreicht (429)",
    "cause.calcom_rejected": "Cal.com hat eine Anfrage abgelehnt",
    "cause.smtp_unreachable": "Mailserver nicht erreichbar",
    "cause.smtp_rejected": "Mailserver lehnt Nachricht ab",
    "cause.sms_gateway_failed": "SMS-Gateway gestört",
    "cause.whatsapp_gateway_failed": "WhatsApp-Gateway gestört",
    "cause.retell_signature": "Retell-Signatur abgelehnt",
    "cause.policy_unreachable": "Regeldienst nicht verfügbar",
    "cause.database_error": "Datenbankfehler",
    "cause.booking_error": "Buchung mit Fehler abgebrochen",
    "fix.calcom_auth": (
        "Cal.com lehnt den API-Schlüssel ab: unter Integrationen einen neuen hinterlegen."
    ),
    "fix.calcom_unreachable": (
        "Cal.com antwortet nicht: Statusseite und Netzwerk prüfen; die Synchronisierung "
        "wiederholt sich selbst."
    ),
    "fix.calcom_rate_limited": (
        "Zu viele Anfragen an Cal.com: sie werden später wiederholt; bei Dauerzustand das "
        "Limit des Tarifs erhöhen."
    ),
    "fix.calcom_rejected": (
        "Cal.com lehnt die Buchung ab: Ereignistyp der Leistung und Cal.com-Nutzer der "
        "Mitarbeiterin prüfen."
    ),
    "fix.smtp_unreachable": (
        "Der Mailserver ist nicht erreichbar: SMTP-Host, Port und Zugangsdaten prüfen."
    ),
    "fix.smtp_rejected": (
        "Der Mailserver lehnt die Nachricht ab: Absenderadresse und Empfänger prüfen."
    ),
    "fix.sms_gateway_failed": "Zugangsdaten und Guthaben beim SMS-Anbieter prüfen.",
    "fix.whatsapp_gateway_failed": (
        "Zugangsdaten und freigegebene Vorlagen beim WhatsApp-Anbieter prüfen."
    ),
    "fix.retell_signature": (
        "Anrufe werden abgewiesen: den Retell-API-Schlüssel unter Integrationen neu eintragen."
    ),
    "fix.policy_unreachable": "Der Regeldienst ist aus: neu starten oder seine Logs prüfen.",
    "fix.database_error": (
        "Die Datenbank hat einen Schreibvorgang abgelehnt: Logs und freien Speicher prüfen."
    ),
    "fix.booking_error": "Den Verlauf jedes Versuchs zeigen die fehlgeschlagenen Buchungen unten.",
}

LABELS: dict[str, dict[str, str]] = {"en": _EN, "de": _DE}
CAUSE_KEYS = tuple(f"{kind}.{key}" for key in CAUSES for kind in ("cause", "fix"))

_WEEKDAYS = {
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _accepted(header: str) -> list[tuple[float, int, str]]:
    ranked = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in LANGUAGES and quality > 0:
            ranked.append((-quality, position, language))
    return sorted(ranked)


def choose_language(
    requested: str | None, accept_language: str | None, timezone: str | None = None
) -> str:
    """`?lang=` when it names a language of the page, else the browser's preferred one of
    them (Accept-Language), else German for a company in a European zone, else English."""
    if requested in LANGUAGES:
        return requested
    ranked = _accepted(accept_language or "")
    if ranked:
        return ranked[0][2]
    return "de" if (timezone or "").startswith("Europe/") else "en"


@dataclass(frozen=True)
class Formatter:
    """Labels and instants of one page view: one language, one zone."""

    lang: str
    zone: tzinfo

    def t(self, key: str, **values: object) -> str:
        text = LABELS[self.lang][key]
        return text.format(**values) if values else text

    def local(self, instant: datetime, zone: tzinfo | str | None = None) -> datetime:
        if instant.tzinfo is None:  # SQLite hands back naive UTC
            instant = instant.replace(tzinfo=UTC)
        return instant.astimezone(self.zone if zone is None else zone_of(zone))

    def when(self, instant: datetime | str | None, zone: tzinfo | str | None = None) -> str:
        """Weekday, date and time: "Mo, 07.12.2026, 14:30" / "Mon, 07 Dec 2026, 14:30"."""
        if instant is None:
            return "\u2013"
        value = self.local(_instant(instant), zone)
        weekday = _WEEKDAYS[self.lang][value.weekday()]
        if self.lang == "de":
            return f"{weekday}, {value:%d.%m.%Y}, {value:%H:%M}"
        month = _MONTHS_EN[value.month - 1]
        return f"{weekday}, {value:%d} {month} {value:%Y}, {value:%H:%M}"

    def time(self, instant: datetime | str | None, zone: tzinfo | str | None = None) -> str:
        if instant is None:
            return "\u2013"
        return f"{self.local(_instant(instant), zone):%H:%M}"

    def stamp(self, instant: datetime | str | None) -> str:
        """Time to the second, for a timeline's steps."""
        if instant is None:
            return "\u2013"
        return f"{self.local(_instant(instant)):%H:%M:%S}"


def _instant(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value
