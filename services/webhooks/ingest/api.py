"""The two ingestion endpoints (Cal.com, Retell).

They take the raw request (no body model: the signature covers the exact bytes) and run
their own short transactions (`services/webhooks/ingest/service.py`), not the request-wide
session.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import State

from services.webhooks.ingest import metrics as event_metrics
from services.webhooks.ingest import service as ingest
from services.webhooks.ingest.schemas import Accepted, Repeated

# OpenAPI fragments (`openapi_extra`, `responses`): FastAPI's own dict shapes.
_RAW_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The sender's JSON, verified byte for byte (at most 1 MiB).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": f"{description} (problem+json)"}


_INGEST_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": Repeated, "description": "A repeated delivery: nothing is done again"},
    202: {"model": Accepted, "description": "Stored; processed asynchronously"},
    400: _problem("Not JSON, or not the source's schema; `errors` lists each field"),
    401: _problem("Missing or invalid signature, or unknown company; nothing stored"),
    413: _problem("Body over 1 MiB"),
}

ingestion = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _answer(receipt: ingest.Receipt) -> JSONResponse:
    return JSONResponse(receipt.answer().model_dump(), status_code=receipt.http_status)


async def calcom_answer(
    state: State, company_id: str, raw: bytes, signature: str | None
) -> JSONResponse:
    """Ingest one Cal.com delivery and answer it (also the lean route's, lean_routes.py)."""
    with event_metrics.refusals_counted("calcom"):
        receipt = await ingest.ingest_calcom(
            state.db, state.arq, state.calcom_secrets, company_id, raw, signature
        )
    event_metrics.count_delivery("calcom", receipt.created)
    return _answer(receipt)


async def retell_answer(state: State, raw: bytes, signature: str | None) -> JSONResponse:
    """Ingest one Retell call event and answer it (also the lean route's, lean_routes.py)."""
    with event_metrics.refusals_counted("retell"):
        receipt = await ingest.ingest_retell(
            state.db, state.arq, state.settings.retell_api_key, raw, signature
        )
    event_metrics.count_delivery("retell", receipt.created)
    return _answer(receipt)


async def _body(request: Request, source: str) -> bytes:
    with event_metrics.refusals_counted(source):
        return await ingest.read_body(request)


@ingestion.post(
    "/calcom/{company_id}",
    summary="Cal.com webhook of one company",
    status_code=202,
    response_model=None,
    responses=_INGEST_ANSWERS,
    openapi_extra=_RAW_JSON_BODY,
)
async def calcom_webhook(
    request: Request,
    company_id: str,
    signature: Annotated[str | None, Header(alias="X-Cal-Signature-256")] = None,
) -> JSONResponse:
    """Signed with the company's webhook secret (hex HMAC-SHA256 of the raw body)."""
    raw = await _body(request, "calcom")
    return await calcom_answer(request.app.state, company_id, raw, signature)


@ingestion.post(
    "/retell",
    summary="Retell call event (call_started, call_ended, call_analyzed, ...)",
    status_code=202,
    response_model=None,
    responses=_INGEST_ANSWERS,
    openapi_extra=_RAW_JSON_BODY,
)
async def retell_webhook(
    request: Request,
    signature: Annotated[str | None, Header(alias="X-Retell-Signature")] = None,
) -> JSONResponse:
    """Signed like every Retell request (retell-sdk scheme, 5-minute window)."""
    raw = await _body(request, "retell")
    return await retell_answer(request.app.state, raw, signature)
