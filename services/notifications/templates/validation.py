"""Save-time validation of notification templates: what could fail or misbehave at send time
is refused when a company saves a template (InvalidInput naming field and line)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, NoReturn

import jinja2
from jinja2 import nodes

from services.notifications.templates import budget
from services.notifications.templates.budget import TemplateBudgetExceeded
from services.notifications.templates.context import VARIABLES, build_context, check_event
from services.notifications.templates.rendering import render_source
from services.notifications.templates.samples import sample_raw
from services.notifications.templates.sandbox import ALLOWED_FILTERS, ALLOWED_TESTS, ENV, standalone
from shared.errors import InvalidInput

MAX_BODY_CHARS: Final = 10_000
MAX_SUBJECT_CHARS: Final = 255
MAX_LOOP_DEPTH: Final = 2

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
        tree = ENV.parse(standalone(source))
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
    check_event(event_type)
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
    if subject is not None and not render_source(subject, context, "subject"):
        raise InvalidInput("The subject renders as empty text.", field="subject")
    if not render_source(body, context, "body"):
        raise InvalidInput("The body renders as empty text.", field="body")
