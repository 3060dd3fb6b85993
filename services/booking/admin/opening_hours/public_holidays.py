"""Public holidays of a country or one of its subdivisions (the `holidays` package; pure)."""

from __future__ import annotations

from datetime import date
from functools import cache

import holidays

from shared.errors import InvalidInput


@cache
def _supported() -> dict[str, tuple[str, ...]]:
    return {code: tuple(subs) for code, subs in holidays.list_supported_countries().items()}


def public_holidays(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    """The public holidays of `year` by date, named in the country's own language. Unknown
    country or subdivision: 422 naming `country` / `subdivision`."""
    code = country.upper()
    supported = _supported()
    if code not in supported:
        raise InvalidInput(
            f"'{country}' is not a supported country code (ISO 3166-1, e.g. DE).",
            field="country",
        )
    subdiv = None
    if subdivision is not None:
        by_upper = {sub.upper(): sub for sub in supported[code]}
        subdiv = by_upper.get(subdivision.upper())
        if subdiv is None:
            known = ", ".join(supported[code]) or "none"
            raise InvalidInput(
                f"'{subdivision}' is not a subdivision of {code} (known: {known}).",
                field="subdivision",
            )
    entity = holidays.country_holidays(code, subdiv=subdiv, years=year)
    language = getattr(entity, "default_language", None)
    if language:
        entity = holidays.country_holidays(code, subdiv=subdiv, years=year, language=language)
    return {day: str(name)[:200] for day, name in sorted(entity.items())}
