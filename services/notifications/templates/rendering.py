"""Rendering of one notification message in the sandbox, under the render budget."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jinja2

from services.notifications.templates import budget
from services.notifications.templates.budget import TemplateBudgetExceeded, TemplateError
from services.notifications.templates.context import build_context
from services.notifications.templates.defaults import check_target, default_template
from services.notifications.templates.locale import normalize_language
from services.notifications.templates.sandbox import MAX_OUTPUT, compile_template


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None
    body: str


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


def render_source(source: str, context: Mapping[str, str], field: str) -> str:
    """The text of one template source (body or subject) over a built context."""
    limit = MAX_OUTPUT[field]
    spent = budget.current()
    try:
        parts: list[str] = []
        size = 0
        template = compile_template(source)
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
    rendered_body = render_source(default_body if body is None else body, context, "body")
    if channel != "email":
        return RenderedMessage(subject=None, body=rendered_body)
    subject_source = default_subject if subject is None else subject
    if subject_source is None:
        return RenderedMessage(subject=None, body=rendered_body)
    return RenderedMessage(render_source(subject_source, context, "subject"), rendered_body)
