"""Sandboxed rendering and save-time validation of notification templates.

A template is Jinja2 over plain, already formatted strings (`build_context`): the job hands
raw data (UTC instants, Decimal amounts), this module formats them in the message's
language and the branch's time zone, and the template only arranges text. That is why the
language a template may use is small: no attribute or item access, no calls, a short list
of filters. Company templates are checked when they are saved (`validate_template`), so a
message cannot fail at send time because of a template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from services.notifications import template_budget as budget
from services.notifications.default_templates import (
    APPOINTMENT_EVENTS,
    CALLBACK_EVENTS,
    EVENT_TYPES,
    check_target,
    default_template,
)
from services.notifications.locale import (
    format_date,
    format_instant,
    format_money,
    format_time,
    normalize_language,
)
from services.notifications.template_budget import TemplateBudgetExceeded, TemplateError
from shared.errors import InvalidInput

DEFAULT_TIMEZONE: Final = "Europe/Berlin"
DEFAULT_CURRENCY: Final = "EUR"
MAX_BODY_CHARS: Final = 10_000
MAX_SUBJECT_CHARS: Final = 255
MAX_LOOP_DEPTH: Final = 2
# What one message may grow to when rendered (loops can repeat text): a hard stop, not a style.
_MAX_OUTPUT: Final = {"body": 50_000, "subject": 1_000}

_COMMON: Final = frozenset({"company", "language"})
_APPOINTMENT: Final = _COMMON | frozenset(
    [
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
    ]
)
_CALLBACK: Final = _COMMON | frozenset(
    [
        "customer_name",
        "callback_phone",
        "callback_reason",
        "preferred_time",
        "branch",
        "due",
        "assigned_to",
        "escalation_level",
        "callback_id",
    ]
)
_EXTRA: Final[Mapping[str, frozenset[str]]] = {
    "booking_rescheduled": frozenset({"old_start"}),
    "booking_cancelled": frozenset({"fee", "reason"}),
    "cancellation_fee_charged": frozenset({"fee", "deadline"}),  # deadline: the one missed
    "booking_sync_failed": frozenset({"error"}),
    "modification_quota_exceeded": frozenset({"quota_limit", "window_days"}),
}
VARIABLES: Final[Mapping[str, frozenset[str]]] = {
    **{event: _APPOINTMENT | _EXTRA.get(event, frozenset()) for event in APPOINTMENT_EVENTS},
    **{event: _CALLBACK for event in CALLBACK_EVENTS},
}

ALLOWED_FILTERS: Final = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "default", "replace", "truncate", "length"}
)
ALLOWED_TESTS: Final = frozenset(
    {"defined", "undefined", "none", "string", "number", "eq", "ne", "in"}
)


__all__ = ["TemplateBudgetExceeded", "TemplateError"]  # re-exported from template_budget


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None
    body: str


def _replace(value: object, old: object, new: object, count: int | None = None) -> str:
    """`replace`, refusing to grow the text past the output limit (`replace('', x)` puts x
    between every two characters)."""
    text, before, after = str(value), str(old), str(new)
    limit = -1 if count is None else max(count, 0)
    hits = text.count(before) if before else len(text) + 1
    if limit >= 0:
        hits = min(hits, limit)
    if len(text) + hits * (len(after) - len(before)) > _MAX_OUTPUT["body"]:
        raise SecurityError("replace would make the text too long")
    return text.replace(before, after, limit)


def _environment() -> budget.BudgetedSandbox:
    env = budget.BudgetedSandbox(
        autoescape=False,  # plain text (mail text part, SMS, WhatsApp), never HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,  # see _standalone: only a tag alone on its line eats its newline
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS}
    env.filters["replace"] = _replace
    env.tests = {name: env.tests[name] for name in ALLOWED_TESTS}
    env.globals = {}  # no range, lipsum, cycler, joiner, namespace, dict
    budget.install(env.filters)  # every filter call checks the render's CPU time
    return env


_ENV: Final = _environment()


# A line holding nothing but block tags and comments (`{% if staff %}`, `{% endif %}`).
_TAG: Final = r"(?:\{%(?:(?!%\}).)*%\}|\{#(?:(?!#\}).)*#\})"
_STANDALONE: Final = re.compile(rf"^([ \t]*{_TAG}(?:[ \t]*{_TAG})*)[ \t]*\n", re.MULTILINE)
_RAW: Final = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.DOTALL)


def _standalone(source: str) -> str:
    """Let a line of only block tags leave no trace in the output; inline tags keep the
    whitespace around them (Jinja's trim_blocks would also eat the line break after
    `...{% endif %}` at the end of a text line). The newline moves into a comment, so
    line numbers in error messages stay those of the source."""
    source = source.replace("\r\n", "\n")
    parts: list[str] = []
    done = 0
    for raw in _RAW.finditer(source):  # text inside {% raw %} stays exactly as written
        parts += [_STANDALONE.sub(_hide_newline, source[done : raw.start()]), raw.group()]
        done = raw.end()
    return "".join([*parts, _STANDALONE.sub(_hide_newline, source[done:])])


def _hide_newline(match: re.Match[str]) -> str:
    return match.group(1) + "{#\n#}"


@lru_cache(maxsize=512)
def _compile(source: str) -> jinja2.Template:
    tree = budget.instrument(_ENV.parse(_standalone(source)))  # loops charge the budget
    tree.set_environment(_ENV)
    return _ENV.from_string(tree)


# Context ---------------------------------------------------------------------------------

# Raw keys passed through as text (the rest are instants and amounts, formatted below).
_TEXT_KEYS: Final = [
    "company",
    "customer_name",
    "service",
    "staff",
    "branch",
    "branch_address",
    "branch_phone",
    "reason",
    "error",
    "appointment_id",
    "reference",
    "callback_id",
    "callback_phone",
    "callback_reason",
    "preferred_time",
    "assigned_to",
    "quota_limit",
    "window_days",
    "escalation_level",
]


def _check_event(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"Unknown event type '{event_type}'.", field="event_type")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _instant(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise TemplateError(f"'{key}' must be a timezone-aware instant.", field=key)
    return value


def _amount(raw: Mapping[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise TemplateError(f"'{key}' must be an amount of money.", field=key)
    return amount


def build_context(event_type: str, language: str, raw: Mapping[str, Any]) -> dict[str, str]:
    """The event's VARIABLES as text in `language` (de/en, else de); missing data is ""."""
    _check_event(event_type)
    language = normalize_language(language)
    zone = _text(raw.get("timezone")) or DEFAULT_TIMEZONE
    currency = _text(raw.get("currency")) or DEFAULT_CURRENCY
    values = {key: _text(raw.get(key)) for key in _TEXT_KEYS}
    values["language"] = language
    starts_at, ends_at = _instant(raw, "starts_at"), _instant(raw, "ends_at")
    old_starts_at, due_at = _instant(raw, "old_starts_at"), _instant(raw, "due_at")
    deadline_at = _instant(raw, "deadline_at")
    price, fee = _amount(raw, "price"), _amount(raw, "fee")
    try:
        if starts_at is not None:
            values["start"] = format_instant(starts_at, zone, language)
            values["date"] = format_date(starts_at, zone, language)
            values["time"] = format_time(starts_at, zone, language)
        if ends_at is not None:
            values["end_time"] = format_time(ends_at, zone, language)
        if starts_at is not None and ends_at is not None:
            values["duration_minutes"] = str(int((ends_at - starts_at).total_seconds() // 60))
        if old_starts_at is not None:
            values["old_start"] = format_instant(old_starts_at, zone, language)
        if due_at is not None:
            values["due"] = format_instant(due_at, zone, language)
        if deadline_at is not None:
            values["deadline"] = format_instant(deadline_at, zone, language)
    except ValueError as exc:  # an unknown time zone name
        raise TemplateError(str(exc), field="timezone") from exc
    if price is not None:
        values["price"] = format_money(price, currency, language)
    # A zero fee is no fee: "" lets a template say `{% if fee %}`.
    if fee is not None and fee != 0:
        values["fee"] = format_money(fee, currency, language)
    return {name: values.get(name, "") for name in VARIABLES[event_type]}


# Validation ------------------------------------------------------------------------------

Scope = dict[str, bool]

_REFUSED: Final[Mapping[type[nodes.Node], str]] = {
    nodes.Getattr: "attribute access is not allowed (the variables are plain text)",
    nodes.Getitem: "item access is not allowed (the variables are plain text)",
    nodes.Call: "function calls are not allowed",
    nodes.Include: "'{% include %}' is not allowed",
    nodes.Import: "'{% import %}' is not allowed",
    nodes.FromImport: "'{% from ... import %}' is not allowed",
    nodes.Extends: "'{% extends %}' is not allowed",
    nodes.Block: "'{% block %}' is not allowed",
    nodes.Macro: "'{% macro %}' is not allowed",
    nodes.CallBlock: "'{% call %}' is not allowed",
    nodes.NSRef: "attribute assignment is not allowed",
}


# '*' repeats strings, '**' makes huge numbers and '%' formats ('%999999999d'): refused.
_BINARY_OK: Final = (nodes.Add, nodes.Sub, nodes.Div, nodes.FloorDiv, nodes.And, nodes.Or)


class _Checker:
    """Walks a parsed template in document order, tracking the names it binds itself.

    Names bound by `{% set %}`, `{% for %}` and `{% with %}` are visible where Jinja makes
    them visible (a loop's or a with-block's names only inside it; names set inside an if
    only inside that branch, since the branch may not run). Two rules keep rendering cheap
    whatever the template: a loop goes over a list written in the template (so at most
    as many rounds as the text allows), and an assigned value may not use another assigned
    name (`{% set a = a ~ a %}` repeated would double the text each time).
    """

    def __init__(self, allowed: frozenset[str], field: str) -> None:
        self.allowed = allowed
        self.field = field

    def fail(self, node: nodes.Node, message: str) -> NoReturn:
        line = node.lineno
        raise InvalidInput(f"line {line}: {message}", field=self.field, line=line)

    def walk(self, node: nodes.Node, scope: Scope, depth: int = 0, value: bool = False) -> None:
        """`scope` maps each bound name to whether it was assigned (set/with) rather than
        looped over; `value` is True inside the value of an assignment."""
        if isinstance(node, nodes.Name):
            self._name(node, scope, value)
            return
        self._refuse(node)
        if isinstance(node, nodes.For):
            self._for(node, scope, depth)
        elif isinstance(node, nodes.If):
            self.walk(node.test, scope, depth, value)
            for elif_ in node.elif_:
                self.walk(elif_.test, scope, depth, value)
            for branch in (node.body, *(elif_.body for elif_ in node.elif_), node.else_):
                self._all(branch, dict(scope), depth)
        elif isinstance(node, nodes.Assign):
            self.walk(node.node, scope, depth, value=True)
            self._bind(node.target, scope, assigned=True)
        elif isinstance(node, nodes.AssignBlock):
            self._all(node.body, dict(scope), depth, value=True)
            if node.filter is not None:
                self.walk(node.filter, scope, depth, value=True)
            self._bind(node.target, scope, assigned=True)
        elif isinstance(node, nodes.With):
            self._all(node.values, scope, depth, value=True)
            inner = dict(scope)
            for target in node.targets:
                self._bind(target, inner, assigned=True)
            self._all(node.body, inner, depth)
        else:
            self._all(list(node.iter_child_nodes()), scope, depth, value)

    def _name(self, node: nodes.Name, scope: Scope, value: bool) -> None:
        if node.name not in self.allowed and node.name not in scope:
            self.fail(node, f"unknown variable '{node.name}'")
        if value and scope.get(node.name):
            self.fail(node, f"'{node.name}' was set in the template and cannot be used here")

    def _refuse(self, node: nodes.Node) -> None:
        for refused, message in _REFUSED.items():
            if isinstance(node, refused):
                self.fail(node, message)
        if isinstance(node, nodes.BinExpr) and not isinstance(node, _BINARY_OK):
            self.fail(node, f"the operator '{node.operator}' is not allowed")
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            allowed = ", ".join(sorted(ALLOWED_FILTERS))
            self.fail(node, f"filter '{node.name}' is not allowed (allowed: {allowed})")
        if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
            self.fail(node, f"test '{node.name}' is not allowed")

    def _bind(self, target: nodes.Node, scope: Scope, *, assigned: bool) -> None:
        for name in target.find_all(nodes.Name):
            scope[name.name] = assigned
        if isinstance(target, nodes.Name):
            scope[target.name] = assigned
        self._refuse(target)  # e.g. {% set ns.x = 1 %}

    def _for(self, node: nodes.For, scope: Scope, depth: int) -> None:
        if depth + 1 > MAX_LOOP_DEPTH:
            self.fail(node, f"loops may be nested at most {MAX_LOOP_DEPTH} deep")
        if node.recursive:
            self.fail(node, "recursive loops are not allowed")
        if not isinstance(node.iter, nodes.List | nodes.Tuple):
            self.fail(node, "a loop can only go over a list written here, e.g. [staff, branch]")
        self.walk(node.iter, scope, depth)
        inner = dict(scope)
        self._bind(node.target, inner, assigned=False)
        if node.test is not None:
            self.walk(node.test, inner, depth)
        self._all(node.body, inner, depth + 1)
        self._all(node.else_, dict(scope), depth)

    def _all(
        self, children: Sequence[nodes.Node], scope: Scope, depth: int, value: bool = False
    ) -> None:
        for child in children:
            self.walk(child, scope, depth, value)


def _check_source(event_type: str, source: str, field: str) -> None:
    try:
        tree = _ENV.parse(_standalone(source))
    except jinja2.TemplateSyntaxError as exc:
        line = exc.lineno
        raise InvalidInput(f"line {line}: {exc.message}", field=field, line=line) from exc
    except (RecursionError, ValueError) as exc:  # `((((...` thousands deep, a 5000-digit number
        raise InvalidInput(
            f"The {field} is nested too deeply or holds a number too large.", field=field
        ) from exc
    _Checker(VARIABLES[event_type], field).walk(tree, {})
    rounds = budget.static_rounds(tree)
    if rounds > budget.MAX_ROUNDS:
        first = next(tree.find_all(nodes.For))
        raise TemplateBudgetExceeded(
            f"line {first.lineno}: the loops would run {rounds} rounds (at most "
            f"{budget.MAX_ROUNDS}).",
            field=field,
            line=first.lineno,
        )


@budget.with_budget
def validate_template(event_type: str, body: str, subject: str | None = None) -> None:
    """Refuse (InvalidInput naming field and line) what could fail or misbehave at send time.

    Besides syntax and unknown variables this refuses attribute/item access, calls and any
    filter outside ALLOWED_FILTERS. The values are plain strings, so none of that is needed
    to write a message, and the sandbox then only has to guard a tiny surface: no way to
    reach Python objects (`''.__class__`), no filters that format or map over objects, and
    at most two nested loops so a template cannot make a worker spin. A trial render with
    `sample_raw` data catches what only shows at run time (e.g. `company + 1`).
    """
    _check_event(event_type)
    if not body.strip():
        raise InvalidInput("The body must not be empty.", field="body")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(
            f"The body is longer than {MAX_BODY_CHARS} characters ({len(body)}).", field="body"
        )
    if subject is not None:
        if not subject.strip():
            raise InvalidInput("The subject must not be empty.", field="subject")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise InvalidInput(
                f"The subject is longer than {MAX_SUBJECT_CHARS} characters ({len(subject)}).",
                field="subject",
            )
        _check_source(event_type, subject, "subject")
    _check_source(event_type, body, "body")
    context = build_context(event_type, "de", sample_raw(event_type))
    if subject is not None and not _render(subject, context, "subject"):
        raise InvalidInput("The subject renders as empty text.", field="subject")
    if not _render(body, context, "body"):
        raise InvalidInput("The body renders as empty text.", field="body")


# Rendering -------------------------------------------------------------------------------

_BLANK_LINES: Final = re.compile(r"\n{3,}")


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to point there)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line if isinstance(line, int) else None


def _render(source: str, context: Mapping[str, str], field: str) -> str:
    limit = _MAX_OUTPUT[field]
    spent = budget.current()
    try:
        parts: list[str] = []
        size = 0
        template = _compile(source)
        with spent.running():
            for chunk in template.generate(dict(context)):
                size += len(chunk)
                if size > limit:
                    raise TemplateBudgetExceeded(
                        f"The {field} renders to more than {limit} characters.", field=field
                    )
                spent.check_time()
                parts.append(chunk)
    except TemplateBudgetExceeded as exc:
        if "line" in exc.extra:
            raise
        line = _template_line(exc)
        where = f"line {line}: " if line is not None else ""
        raise TemplateBudgetExceeded(f"{where}{exc.detail}", field=field, line=line) from exc
    except RecursionError as exc:
        raise TemplateError(f"The {field} is nested too deeply.", field=field) from exc
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        line = _template_line(exc)
        where = f"line {line}: " if line is not None else ""
        message = exc.message if isinstance(exc, jinja2.TemplateError) else str(exc)
        raise TemplateError(f"{where}{message}", field=field, line=line) from exc
    text = "".join(parts)
    if field == "subject":
        return " ".join(text.split())  # one header line, whatever the data contains
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


@budget.with_budget
def render(
    event_type: str,
    channel: str,
    language: str,
    raw: Mapping[str, Any],
    *,
    body: str | None = None,
    subject: str | None = None,
) -> RenderedMessage:
    """One message from a company's body/subject (each falling back to the built-in one).

    sms and whatsapp have no subject. Errors are TemplateError (422), which a template that
    passed `validate_template` does not raise.
    """
    check_target(event_type, channel)
    language = normalize_language(language)
    default_subject, default_body = default_template(event_type, channel, language)
    context = build_context(event_type, language, raw)
    rendered_body = _render(default_body if body is None else body, context, "body")
    if channel != "email":
        return RenderedMessage(subject=None, body=rendered_body)
    subject_source = default_subject if subject is None else subject
    if subject_source is None:
        return RenderedMessage(subject=None, body=rendered_body)
    return RenderedMessage(_render(subject_source, context, "subject"), rendered_body)


# Sample data -----------------------------------------------------------------------------

_SAMPLE_START: Final = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 14:30 in Berlin


def sample_raw(event_type: str, language: str = "de") -> dict[str, Any]:
    """Realistic raw data for previews: a salon in Berlin, an appointment on 2026-11-24."""
    _check_event(event_type)
    english = normalize_language(language) == "en"
    raw: dict[str, Any] = {
        "company": "Salon Schnittpunkt",
        "customer_name": "Maria Schneider",
        "branch": "Mitte",
        "timezone": DEFAULT_TIMEZONE,
        "currency": DEFAULT_CURRENCY,
    }
    if event_type in CALLBACK_EVENTS:
        return raw | {
            "callback_phone": "+49 170 1234567",
            "callback_reason": "Question about hair colouring"
            if english
            else "Frage zu einer Färbung",
            "preferred_time": "afternoons" if english else "nachmittags",
            "due_at": datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
            "assigned_to": "Ben",
            "escalation_level": 1,
            "callback_id": "5b0f9a52-3c1e-4d7a-9e2b-8f6c1d2a4e10",
        }
    raw |= {
        "service": "Damenhaarschnitt",
        "staff": "Anna",
        "branch_address": "Torstraße 12, 10119 Berlin",
        "branch_phone": "+49 30 1234567",
        "starts_at": _SAMPLE_START,
        "ends_at": datetime(2026, 11, 24, 14, 15, tzinfo=UTC),
        "price": Decimal("48.00"),
        "appointment_id": "0b6c2f1e-7d4a-4e8b-9c3f-1a2b3c4d5e6f",
        "reference": "K7M2P9",
    }
    extra: dict[str, dict[str, Any]] = {
        "booking_rescheduled": {"old_starts_at": datetime(2026, 11, 20, 9, 0, tzinfo=UTC)},
        "booking_cancelled": {
            "fee": Decimal("15.00"),
            "reason": "Illness" if english else "Krankheit",
        },
        "cancellation_fee_charged": {
            "fee": Decimal("15.00"),
            "deadline_at": datetime(2026, 11, 23, 13, 30, tzinfo=UTC),
        },
        "booking_sync_failed": {"error": "Cal.com did not answer within 10 s (HTTP 504)"},
        "modification_quota_exceeded": {"quota_limit": 3, "window_days": 30},
    }
    return raw | extra.get(event_type, {})
