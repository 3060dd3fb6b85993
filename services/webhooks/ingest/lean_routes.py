"""The lean handlers of the two ingestion endpoints (shared/web/lean.py, docs/adr/0009).

Ingestion needs nothing of FastAPI (the raw body, one header, a path parameter), so its
handlers always answer, through the same functions as the FastAPI routes in api.py; only a
body over the lean limit (64 KiB) or a client that disconnects goes on to those routes,
which stream it and answer 413 over 1 MiB.
"""

from __future__ import annotations

from starlette.responses import Response

from services.webhooks.ingest.api import calcom_answer, retell_answer
from shared.web.lean import Handler, LeanRequest


async def calcom(request: LeanRequest) -> Response:
    signature = request.headers.get("x-cal-signature-256")
    company_id = request.path_params["company_id"]
    return await calcom_answer(request.app.state, company_id, request.body, signature)


async def retell(request: LeanRequest) -> Response:
    signature = request.headers.get("x-retell-signature")
    return await retell_answer(request.app.state, request.body, signature)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/webhooks/calcom/{company_id}"): calcom,
    ("POST", "/v1/webhooks/retell"): retell,
}
