"""The budget of one template render: loop rounds, CPU time (and, in rendering.py, output size).

Tenants write templates, so a template is hostile input. The save-time checks
(`validation._Checker`) keep the language small, and `static_rounds` refuses loops whose
rounds, multiplied out, exceed MAX_ROUNDS. At render time the budget holds whatever the
template is (one stored before these checks, or one that only runs a loop for some data):

- every `{% for %}` iterates through `_rounds` (spliced into the parsed tree before it is
  compiled), which charges one round per item: more than MAX_ROUNDS per render stops it;
- every filter call and every round checks the render's CPU time (`time.thread_time`, the
  thread's own CPU, so a busy machine does not make a cheap template fail): more than
  MAX_CPU_S stops it;
- `rendering.render_source` stops output past its size limit.

Rendering runs off the event loop (`in_thread`): the budget is what ends it, since a thread
cannot be killed, and while it runs the loop keeps the GIL's switch interval (5 ms).
A stopped render raises TemplateBudgetExceeded (422 `template_budget_exceeded`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, ParamSpec, TypeVar

from jinja2 import nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from shared.errors import InvalidInput

MAX_ROUNDS: Final = 10_000  # loop rounds per render, all loops together
MAX_CPU_S: Final = 0.05  # CPU seconds per render
MAX_VALUE_CHARS: Final = 50_000  # a string or list an operator may build
MAX_INT_BITS: Final = 4096  # an integer an operator may build
SIZED_FILTER: Final = "_sized"
ROUNDS_FILTER: Final = "_rounds"

P = ParamSpec("P")
R = TypeVar("R")


class TemplateError(InvalidInput):
    """A template that cannot be rendered (or raw data that cannot be formatted)."""


class TemplateBudgetExceeded(TemplateError):
    """A render stopped by its budget (loop rounds, CPU time or output size)."""

    code = "template_budget_exceeded"


@dataclass
class Budget:
    """What one render may still use. CPU time counts only while a template runs
    (`running`): parsing and compiling are bounded by the source's size, and cached."""

    rounds: int = MAX_ROUNDS
    cpu_s: float = MAX_CPU_S
    used_rounds: int = 0
    used_cpu_s: float = 0.0
    clock: float | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        self.clock = time.thread_time()
        try:
            yield
        finally:
            self.used_cpu_s += time.thread_time() - self.clock
            self.clock = None

    def check_time(self) -> None:
        if self.clock is None:
            return
        if self.used_cpu_s + time.thread_time() - self.clock > self.cpu_s:
            raise TemplateBudgetExceeded(
                f"The template needs more than {self.cpu_s * 1000:.0f} ms to render."
            )

    def charge_round(self) -> None:
        self.used_rounds += 1
        if self.used_rounds > self.rounds:
            raise TemplateBudgetExceeded(
                f"The template's loops run more than {self.rounds} rounds."
            )
        self.check_time()


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def current() -> Budget:
    """The budget of the render in progress (a fresh one outside `bounded`)."""
    return _CURRENT.get() or Budget()


@contextmanager
def bounded() -> Iterator[Budget]:
    """One budget for everything rendered inside (nested uses share the outer one)."""
    active = _CURRENT.get()
    if active is not None:
        yield active
        return
    budget = Budget()
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def with_budget(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` under one render budget."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with bounded():
            return func(*args, **kwargs)

    return run


async def in_thread(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`func(*args, **kwargs)` in a worker thread, so a render never stalls the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


@pass_context  # never folded into a constant at compile time: it must run per render
def _rounds(_context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = current()
    for item in iterable:
        budget.charge_round()
        yield item


class BudgetedSandbox(SandboxedEnvironment):
    """The sandbox with the budget in its hooks: every call (a macro, a loop's `loop()`),
    attribute and item lookup checks the CPU time, and the operators that can build huge
    values (`'x' * 10**9`, `2 ** 10**9`, `'%999999999d' % 1`) are checked first. Intercepted
    operators are never folded into constants at compile time either."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        current().check_time()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with '%' is not allowed")
        if _too_large(operator, left, right):
            raise SecurityError(f"the operator '{operator}' would build too large a value")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        current().check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        current().check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        current().check_time()
        return super().getitem(obj, argument)


def _too_large(operator: str, left: Any, right: Any) -> bool:
    sized = (str, list, tuple)
    if operator == "+" and isinstance(left, sized) and isinstance(right, sized):
        return len(left) + len(right) > MAX_VALUE_CHARS
    if operator == "*":
        for value, times in ((left, right), (right, left)):
            if isinstance(value, sized) and isinstance(times, int):
                return len(value) * times > MAX_VALUE_CHARS
        if isinstance(left, int) and isinstance(right, int):
            return left.bit_length() + right.bit_length() > MAX_INT_BITS
    if operator == "**" and isinstance(left, int) and isinstance(right, int):
        return abs(left) > 1 and left.bit_length() * abs(right) > MAX_INT_BITS
    return False


@pass_context
def _sized(_context: Context, value: Any) -> Any:
    """The value of a `~` concatenation, refused past MAX_VALUE_CHARS (so repeated doubling
    stops at once)."""
    current().check_time()
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        raise SecurityError("the operator '~' would build too large a value")
    return value


def timed_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks the render's CPU time before it runs (keeps Jinja's pass_* marks:
    functools.wraps copies the function's attributes)."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        current().check_time()
        return func(*args, **kwargs)

    return run


def install(filters: dict[str, Any]) -> None:
    """Time every filter and add the rounds counter (not callable from a saved template: the
    checker allows only the listed filters)."""
    for name, func in list(filters.items()):
        filters[name] = timed_filter(func)
    filters[ROUNDS_FILTER] = _rounds
    filters[SIZED_FILTER] = _sized


def instrument(tree: nodes.Template) -> nodes.Template:
    """Make every loop of a parsed template iterate through `_rounds` and every `~` pass its
    result through `_sized`."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, ROUNDS_FILTER, [], [], None, None, lineno=loop.lineno)
    for parent in list(tree.find_all(nodes.Node)):
        for name in parent.fields:
            value = getattr(parent, name, None)
            if isinstance(value, nodes.Concat):
                setattr(parent, name, _sized_node(value))
            elif isinstance(value, list):
                value[:] = [_sized_node(v) if isinstance(v, nodes.Concat) else v for v in value]
    return tree


def _sized_node(node: nodes.Concat) -> nodes.Filter:
    return nodes.Filter(node, SIZED_FILTER, [], [], None, None, lineno=node.lineno)


def static_rounds(node: nodes.Node, factor: int = 1) -> int:
    """The loop rounds of a checked template (or part): a loop over a written list runs once
    per item, times the rounds of the loops around it."""
    if isinstance(node, nodes.For) and isinstance(node.iter, nodes.List | nodes.Tuple):
        inner = factor * len(node.iter.items)
        return (
            inner
            + sum(static_rounds(part, inner) for part in node.body)
            + sum(static_rounds(part, factor) for part in node.else_)
        )
    return sum(static_rounds(child, factor) for child in node.iter_child_nodes())
