"""The mail page of the development outbox (tools/dev_outbox.py): every caught message, newest
first, as the customer would read it. Plain HTML with inline CSS: no JavaScript, no CDN, every
text escaped (an HTML part is shown as its source)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from jinja2 import Environment, Template

if TYPE_CHECKING:
    from tools.dev_outbox import CaughtMessage

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Mail · Appointments (development)</title>
<style>
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: #202124; background: #f6f7f9; }
  header { padding: .75rem 1.25rem; background: #202124; color: #fff; display: flex;
           justify-content: space-between; align-items: baseline; gap: 1rem; }
  header h1 { margin: 0; font-size: 1.1rem; font-weight: 600; }
  header a { color: #fff; }
  main { max-width: 960px; margin: 0 auto; padding: 1.25rem; }
  .muted { color: #5f6368; }
  .message { background: #fff; border: 1px solid #dadce0; border-radius: 8px;
             margin: 0 0 .9rem; padding: .8rem 1rem; }
  .message h2 { margin: 0 0 .3rem; font-size: 1rem; }
  .meta { display: flex; flex-wrap: wrap; gap: .2rem 1rem; color: #5f6368; font-size: .85rem; }
  .badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .75rem;
           font-weight: 600; background: #e8f0fe; color: #1a56c4; }
  .badge.sms { background: #e6f4ea; color: #1b7f3b; }
  .badge.whatsapp { background: #fef7e0; color: #a15c00; }
  pre { white-space: pre-wrap; word-break: break-word; margin: .6rem 0 0;
        font: 13px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  details { margin: .5rem 0 0; }
  .empty { background: #fff; border: 1px dashed #dadce0; border-radius: 8px; padding: 1rem; }
</style>
</head>
<body>
<header>
  <h1>Mail · what customers would receive</h1>
  <a href="/">Refresh</a>
</header>
<main>
  <p class="muted">Development outbox: nothing here left this machine.
  {% if smtp_port %}E-mail arrives over SMTP on 127.0.0.1:{{ smtp_port }}, {% endif %}SMS and
  WhatsApp through the gateway API. Showing {{ messages | length }} of {{ total }}
  (the last 200 are kept), newest first, times in UTC.</p>
  {% if not messages %}
  <p class="empty">No messages yet. Book an appointment with a customer e-mail address or phone
  number and its confirmation appears here.</p>
  {% endif %}
  {% for m in messages %}
  <article class="message" id="{{ m.id }}">
    <h2><span class="badge {{ m.channel }}">{{ m.channel }}</span>
      {{ m.subject if m.subject is not none else 'to ' ~ m.to }}</h2>
    <div class="meta">
      <span>to {{ m.to }}</span>
      {% if m.sender %}<span>from {{ m.sender }}</span>{% endif %}
      <span>{{ m.received_at.strftime('%Y-%m-%d %H:%M:%S') }} UTC</span>
      {% if m.delivery_id %}<span>delivery {{ m.delivery_id }}</span>{% endif %}
    </div>
    <pre>{{ m.body }}</pre>
    {% if m.html %}
    <details><summary>HTML part (source)</summary><pre>{{ m.html }}</pre></details>
    {% endif %}
  </article>
  {% endfor %}
</main>
</body>
</html>
"""


@cache
def _template() -> Template:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(PAGE)


def render_page(messages: Sequence[CaughtMessage], *, total: int, smtp_port: int | None) -> str:
    """The page for `messages` (newest first), `total` of them kept."""
    return _template().render(messages=messages, total=total, smtp_port=smtp_port)
