"""Tenant administration REST API (/v1/admin/...)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/admin", tags=["admin"])


from shared.auth import AdminPrincipal  # noqa: E402


@router.get("/branches")
async def list_branches(principal: AdminPrincipal) -> dict[str, list[object]]:
    return {"items": []}
