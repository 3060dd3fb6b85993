"""The levels of a target and their merge (pure): company first, then branch, service, staff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.errors import InvalidInput

LEVELS: Final = ("company", "branch", "service", "staff")


@dataclass(frozen=True)
class Chain:
    """The entities whose configs apply to a target, from the company down to the staff."""

    company_id: str
    branch_id: str | None = None
    service_id: str | None = None
    staff_id: str | None = None

    def levels(self) -> list[tuple[str, str]]:
        """(level, entity_id) of every level present, company first."""
        ids = (self.company_id, self.branch_id, self.service_id, self.staff_id)
        return [(level, entity) for level, entity in zip(LEVELS, ids, strict=True) if entity]

    def cache_key(self) -> str:
        entities = (self.branch_id, self.service_id, self.staff_id)
        return ":".join(entity or "-" for entity in entities)


def predicted_chain(
    company_id: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> Chain | None:
    """The chain `resolve_chain` returns (unless it refuses the ids), when the ids alone fix it:
    a branch given, or no entity at all. A staff member or service alone: its branch decides."""
    if branch_id or not (service_id or staff_id):
        return Chain(company_id, branch_id or None, service_id or None, staff_id or None)
    return None


def cache_key(chain: Chain, filters: Mapping[str, Any]) -> str:
    """The key of a chain's effective value under its company's version."""
    return ":".join([*(str(value) for value in filters.values()), chain.cache_key()])


def overlay(
    configs: Mapping[str, Mapping[str, Any] | None],
    defaults: Mapping[str, Any],
    *,
    staff_forbidden: frozenset[str] | tuple[str, ...] = (),
    default_level: str = "default",
) -> tuple[dict[str, Any], dict[str, str]]:
    """Overlay the levels' configs key by key, company first, over `defaults`.

    Returns (effective config, provenance: the level each key came from). A key a level does
    not set is inherited; keys in `staff_forbidden` are ignored at staff level even if stored
    (staff may set preferences only). Values are copied, so callers may mutate the result.
    """
    unknown = set(configs) - set(LEVELS)
    if unknown:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")
    effective: dict[str, Any] = {key: _copy(value) for key, value in defaults.items()}
    provenance = dict.fromkeys(defaults, default_level)
    for level in LEVELS:
        config = configs.get(level)
        if config is None:
            continue
        for key, value in config.items():
            if level == "staff" and key in staff_forbidden:
                continue
            effective[key] = _copy(value)
            provenance[key] = level
    return effective, provenance


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value
