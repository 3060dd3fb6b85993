"""The Jinja2 sandbox notification templates render in: plain text, a short list of filters
and tests, no globals, every loop and filter call charged to the render's budget."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import jinja2
from jinja2.exceptions import SecurityError

from services.notifications.templates import budget

# What one message may grow to when rendered (loops can repeat text): a hard stop, not a style.
MAX_OUTPUT: Final = {"body": 50_000, "subject": 1_000}

ALLOWED_FILTERS: Final = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "default", "replace", "truncate", "length"}
)
ALLOWED_TESTS: Final = frozenset(
    {"defined", "undefined", "none", "string", "number", "eq", "ne", "in"}
)


def _replace(value: object, old: object, new: object, count: int | None = None) -> str:
    """`replace`, refusing to grow the text past the output limit (`replace('', x)` puts x
    between every two characters)."""
    text, before, after = str(value), str(old), str(new)
    limit = -1 if count is None else max(count, 0)
    hits = text.count(before) if before else len(text) + 1
    if limit >= 0:
        hits = min(hits, limit)
    if len(text) + hits * (len(after) - len(before)) > MAX_OUTPUT["body"]:
        raise SecurityError("replace would make the text too long")
    return text.replace(before, after, limit)


def _environment() -> budget.BudgetedSandbox:
    env = budget.BudgetedSandbox(
        autoescape=False,  # plain text (mail text part, SMS, WhatsApp), never HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,  # see standalone: only a tag alone on its line eats its newline
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


ENV: Final = _environment()


# A line holding nothing but block tags and comments (`{% if staff %}`, `{% endif %}`).
_TAG: Final = r"(?:\{%(?:(?!%\}).)*%\}|\{#(?:(?!#\}).)*#\})"
_STANDALONE_LINE: Final = re.compile(rf"^([ \t]*{_TAG}(?:[ \t]*{_TAG})*)[ \t]*\n", re.MULTILINE)
_RAW: Final = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.DOTALL)


def standalone(source: str) -> str:
    """Let a line of only block tags leave no trace in the output; inline tags keep the
    whitespace around them (Jinja's trim_blocks would also eat the line break after
    `...{% endif %}` at the end of a text line). The newline moves into a comment, so
    line numbers in error messages stay those of the source."""
    source = source.replace("\r\n", "\n")
    parts: list[str] = []
    done = 0
    for raw in _RAW.finditer(source):  # text inside {% raw %} stays exactly as written
        parts += [_STANDALONE_LINE.sub(_hide_newline, source[done : raw.start()]), raw.group()]
        done = raw.end()
    return "".join([*parts, _STANDALONE_LINE.sub(_hide_newline, source[done:])])


def _hide_newline(match: re.Match[str]) -> str:
    return match.group(1) + "{#\n#}"


@lru_cache(maxsize=512)
def compile_template(source: str) -> jinja2.Template:
    """The sandboxed template of `source`, its loops and `~` charged to the budget (cached)."""
    tree = budget.instrument(ENV.parse(standalone(source)))  # loops charge the budget
    tree.set_environment(ENV)
    return ENV.from_string(tree)
