"""Bodies of the admin routes for access: the company's API keys, the platform keys and the
company's Cal.com link."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.booking.admin.schemas import Input
from shared.fields import HttpBaseUrl, Instant, InstantOut
from shared.security.api_keys import SCOPES

# API keys ------------------------------------------------------------------------------


def _known_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; allowed: {', '.join(SCOPES)}")
    return sorted(set(scopes))


Scopes = Annotated[list[str], Field(min_length=1, max_length=10), AfterValidator(_known_scopes)]


class ApiKeyCreate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: Scopes
    expires_at: Instant | None = None


class ApiKeyUpdate(Input):
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    scopes: Scopes | None = None


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself nor its hash; `prefix` identifies it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    company_id: str
    name: str
    prefix: str
    scopes: list[str]
    last_used_at: InstantOut | None
    expires_at: InstantOut | None
    revoked_at: InstantOut | None
    created_at: InstantOut
    updated_at: InstantOut


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The plaintext key. Shown in this answer only; store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = Field(
        default=None, description="Always null: every key in one page (a company has few)."
    )


# Platform keys -------------------------------------------------------------------------


class PlatformKeyOut(BaseModel):
    """A platform key as listed: never the key itself nor its hash; `prefix` identifies it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: InstantOut
    last_used_at: InstantOut | None
    expires_at: InstantOut | None
    revoked_at: InstantOut | None


class PlatformKeyList(BaseModel):
    items: list[PlatformKeyOut]
    next_cursor: str | None = Field(
        default=None, description="Always null: every platform key in one page."
    )


# Cal.com integration -------------------------------------------------------------------


class CalcomIntegrationIn(Input):
    api_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=255)]
    base_url: HttpBaseUrl | None = Field(
        default=None, description="Defaults to CALCOM_BASE_URL, else https://api.cal.com"
    )
    webhook_secret: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=16, max_length=255)]
        | None
    ) = Field(default=None, description="Kept when omitted; generated when there is none")


class CalcomIntegrationOut(BaseModel):
    configured: bool
    api_key: str | None = Field(description="Masked: the last four characters only")
    base_url: str | None
    webhook_secret: str | None = Field(
        description="Masked, except in the PUT answer that generated it"
    )
    webhook_path: str = Field(description="Where Cal.com must send this company's webhooks")
