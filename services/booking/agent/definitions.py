"""The agent's functions as Retell custom functions, and the function endpoint's OpenAPI body.

One table (`SPECS`) names each function's arguments, answer and timeout; the Retell tool
definitions (`GET /v1/retell/functions`, docs/retell-functions.json) and the OpenAPI request
body are both derived from it, so they cannot disagree. No I/O: it reads the pydantic models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.booking.agent.schemas import (
    AvailabilityAnswer,
    BookAppointmentArgs,
    BookedAnswer,
    CallbackAnswer,
    CancelAppointmentArgs,
    CancelledAnswer,
    CheckAvailabilityArgs,
    ListAnswer,
    ListAppointmentsArgs,
    RequestCallbackArgs,
    RescheduleAppointmentArgs,
    RescheduledAnswer,
    RetellCall,
    RetellFunction,
)

FUNCTION_PATH = "/v1/retell/functions/{name}"


@dataclass(frozen=True)
class FunctionSpec:
    args: type[BaseModel]
    answer: type[BaseModel]
    timeout_ms: int  # Retell waits this long per attempt (its default is 120 s)

    @property
    def description(self) -> str:
        return (self.args.__doc__ or "").strip()


SPECS: dict[str, FunctionSpec] = {
    "check_availability": FunctionSpec(CheckAvailabilityArgs, AvailabilityAnswer, 15_000),
    "book_appointment": FunctionSpec(BookAppointmentArgs, BookedAnswer, 20_000),
    "cancel_appointment": FunctionSpec(CancelAppointmentArgs, CancelledAnswer, 20_000),
    "reschedule_appointment": FunctionSpec(RescheduleAppointmentArgs, RescheduledAnswer, 20_000),
    "list_appointments": FunctionSpec(ListAppointmentsArgs, ListAnswer, 10_000),
    "request_callback": FunctionSpec(RequestCallbackArgs, CallbackAnswer, 10_000),
}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's schema without pydantic's titles, null branches and null defaults."""
    out = {k: v for k, v in schema.items() if k != "title" and not (k == "default" and v is None)}
    branches = out.pop("anyOf", None)
    if branches is not None:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    return out


def parameters(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a flat arguments model, as Retell's `parameters` takes it."""
    schema = model.model_json_schema()
    properties = {name: _plain(value) for name, value in schema["properties"].items()}
    return {"type": "object", "properties": properties, "required": schema.get("required", [])}


def definitions(base_url: str) -> list[RetellFunction]:
    """Every function as a Retell custom function posting to `base_url`."""
    base = base_url.rstrip("/")
    return [
        RetellFunction(
            name=name,
            description=spec.description,
            url=base + FUNCTION_PATH.format(name=name),
            parameters=parameters(spec.args),
            timeout_ms=spec.timeout_ms,
        )
        for name, spec in SPECS.items()
    ]


def request_body() -> dict[str, Any]:
    """The function endpoint's OpenAPI request body: per function, Retell's wrapped call
    (`name`, `args`, `call`) or, with "Payload: args only", the bare arguments."""
    call = parameters(RetellCall)
    call["additionalProperties"] = True
    wrapped = [
        {
            "title": f"{name} ({spec.args.__name__})",
            "type": "object",
            "properties": {"name": {"const": name}, "args": parameters(spec.args), "call": call},
            "required": ["name", "args", "call"],
        }
        for name, spec in SPECS.items()
    ]
    bare = [
        {"title": f"{name} args only ({spec.args.__name__})", **parameters(spec.args)}
        for name, spec in SPECS.items()
    ]
    schema = {"anyOf": [*wrapped, *bare]}
    return {"required": True, "content": {"application/json": {"schema": schema}}}
