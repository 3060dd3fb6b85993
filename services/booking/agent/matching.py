"""Tolerant matching of spoken names (services, staff, branches) against a tenant's own.

A voice agent passes on what it heard: any case, "ae" for "ä", a hyphen, a dropped letter, a
filler word ("bei Anna"), or only part of a German compound ("Haarschnitt"). The steps below run
in order and the first that finds anything decides:

1. exact id;
2. exact normalized name (spaces ignored: "Herren Haarschnitt" is "Herrenhaarschnitt"), then
   the same with filler words dropped on both sides ("einen Haarschnitt für Kinder, bitte");
3. whole words or compound heads: the query's words occur in the name ("Anna" in "Anna
   Schmidt"), the name's words in the query ("Herrenhaarschnitt und Waschen"), or the query ends
   a word of the name ("Haarschnitt" ends "Herrenhaarschnitt": a German compound is a kind of
   its last part, so "Haarschnitt" hits "Herrenhaarschnitt" and "Damenhaarschnitt" alike);
4. compound modifiers: the query begins a word of the name ("Bart" -> "Bartpflege"). Weaker
   than step 3, so "Anna" finds "Anna Schmidt" rather than "Annabell Meier".
Parts in steps 3 and 4 need MIN_PART_CHARS letters.
5. typos: Damerau-Levenshtein distance within `max_typos` of the whole name or of one of its
   words, scored 1 - distance / length.

Steps 2-4 have no degrees: two hits there are ambiguous. In step 5 the best score must lead every
other by more than FUZZY_MARGIN, else the close ones are ambiguous. When in doubt we answer
"ambiguous" and the agent asks the caller: a wrong guess books the wrong service.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final, Generic, Literal, TypeAlias, TypeVar

K = TypeVar("K")
Status: TypeAlias = Literal["unique", "ambiguous", "none"]

MIN_PART_CHARS: Final = 4  # shorter compound parts ("an", "bar") would match far too much
MIN_FUZZY_CHARS: Final = 3  # shorter queries or words are compared exactly only
FUZZY_MARGIN: Final = Fraction(1, 10)
# Words a caller wraps around a name; dropped from the query unless nothing else is left.
FILLER_WORDS: Final = frozenset(
    {
        "bei", "beim", "mit", "von", "zu", "zum", "zur", "fuer", "in", "im", "am",
        "der", "die", "das", "den", "dem", "ein", "eine", "einen", "einem",
        "frau", "herr", "herrn", "bitte", "gern", "gerne", "termin", "filiale",
    }
)  # fmt: skip

_UMLAUTS: Final = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_APOSTROPHES: Final = re.compile("['\u2019`\u00b4]")
_SEPARATORS: Final = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Casefolded, umlauts spelled out ("ä" -> "ae"), accents dropped, one space between words."""
    text = unicodedata.normalize("NFC", text).casefold().translate(_UMLAUTS)
    # Compatibility forms may decompose to capitals ("🄰" -> "A"), and casefolding may make
    # combining marks ("İ" -> "i̇"): fold and decompose again before dropping the marks.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _APOSTROPHES.sub("", text)
    return _SEPARATORS.sub(" ", text).strip()


def distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (unrestricted transpositions; a true metric)."""
    if a == b:
        return 0
    if not a or not b:
        return len(a) + len(b)
    infinity = len(a) + len(b)
    # Lowrance-Wagner: rows/columns shifted by one to hold the "infinity" border.
    d = [[infinity] * (len(b) + 2)]
    d += [[infinity, *range(len(b) + 1)]]
    d += [[infinity, i] + [0] * len(b) for i in range(1, len(a) + 1)]
    last_row: dict[str, int] = {}
    for i in range(1, len(a) + 1):
        last_col = 0
        for j in range(1, len(b) + 1):
            k, col = last_row.get(b[j - 1], 0), last_col
            cost = 1
            if a[i - 1] == b[j - 1]:
                cost, last_col = 0, j
            d[i + 1][j + 1] = min(
                d[i][j] + cost,
                d[i + 1][j] + 1,
                d[i][j + 1] + 1,
                d[k][col] + (i - k - 1) + 1 + (j - col - 1),
            )
        last_row[a[i - 1]] = i
    return d[len(a) + 1][len(b) + 1]


def max_typos(length: int) -> int:
    """Edits tolerated against a name or word of `length` normalized characters."""
    if length <= 5:
        return 1
    if length <= 10:
        return 2
    return 3


@dataclass(frozen=True)
class MatchResult(Generic[K]):
    """`id`/`name` when unique; `candidates` best first (the one match when unique)."""

    status: Status
    id: K | None = None
    name: str | None = None
    candidates: list[tuple[K, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for _, name in self.candidates]


@dataclass(frozen=True)
class _Prepared(Generic[K]):
    id: K
    name: str
    words: tuple[str, ...]
    core: tuple[str, ...]  # words without fillers ("Haarschnitt für Kinder")
    compact: str

    @property
    def order(self) -> tuple[str, str, str]:
        return (self.compact, self.name, str(self.id))


def _prepare(candidate: tuple[K, str]) -> _Prepared[K]:
    words = tuple(normalize(candidate[1]).split())
    return _Prepared(candidate[0], candidate[1], words, _core(words), "".join(words))


def _core(words: Sequence[str]) -> tuple[str, ...]:
    return tuple(w for w in words if w not in FILLER_WORDS) or tuple(words)


def _has_run(words: Sequence[str], run: Sequence[str]) -> bool:
    """Whether `run` occurs in `words` as consecutive whole words."""
    n = len(run)
    return n > 0 and any(tuple(words[i : i + n]) == tuple(run) for i in range(len(words) - n + 1))


def _is_part(query: str, c: _Prepared[K], *, head: bool) -> bool:
    """Whether `query` ends (head) or begins (not head) a longer word of the name."""
    if len(query) < MIN_PART_CHARS:
        return False
    return any(
        len(word) > len(query) and (word.endswith(query) if head else word.startswith(query))
        for word in (*c.words, c.compact)
    )


def _has_words(core: Sequence[str], c: _Prepared[K]) -> bool:
    return _has_run(c.words, core) or _has_run(c.core, core) or _has_run(core, c.core)


def _similarity(query: str, c: _Prepared[K]) -> Fraction | None:
    """Best 1 - distance/length over the whole name and its words, None if none is close."""
    targets = {c.compact, "".join(c.core), *(w for w in c.words if len(w) >= MIN_FUZZY_CHARS)}
    best: Fraction | None = None
    for target in sorted(targets):
        edits = distance(query, target)
        if edits <= max_typos(len(target)):
            score = 1 - Fraction(edits, max(len(query), len(target)))
            best = score if best is None or score > best else best
    return best


def _result(hits: Sequence[_Prepared[K]]) -> MatchResult[K]:
    """Unique for one hit, ambiguous for several, in the order given."""
    pairs = [(c.id, c.name) for c in hits]
    if len(hits) == 1:
        return MatchResult("unique", hits[0].id, hits[0].name, pairs)
    return MatchResult("ambiguous", candidates=pairs)


def match(query: str | None, candidates: Sequence[tuple[K, str]]) -> MatchResult[K]:
    """Match a spoken name or an id against (id, name) candidates; see the module docstring."""
    if query is None or not query.strip():
        return MatchResult("none")
    pool = sorted((_prepare(c) for c in candidates), key=lambda c: c.order)
    by_id = [c for c in pool if str(c.id) == query.strip()]
    if by_id:
        return _result(by_id)

    spoken = tuple(normalize(query).split())
    core = _core(spoken)
    compact = "".join(core)
    if not compact:
        return MatchResult("none")

    for exact in (
        [c for c in pool if c.compact == "".join(spoken)],
        [c for c in pool if "".join(c.core) == compact],
    ):
        if exact:
            return _result(exact)
    # Best first: whole words before compound heads, then the name the query covers most of.
    words = [c for c in pool if _has_words(core, c)]
    heads = [c for c in pool if c not in words and _is_part(compact, c, head=True)]
    if words or heads:
        return _result([*words, *sorted(heads, key=lambda c: len(c.compact))])
    modifiers = [c for c in pool if _is_part(compact, c, head=False)]
    if modifiers:
        return _result(sorted(modifiers, key=lambda c: len(c.compact)))
    if len(compact) < MIN_FUZZY_CHARS:
        return MatchResult("none")

    scored = [(score, c) for c in pool if (score := _similarity(compact, c)) is not None]
    if not scored:
        return MatchResult("none")
    scored.sort(key=lambda sc: (-sc[0], sc[1].order))
    best = scored[0][0]
    return _result([c for score, c in scored if best - score <= FUZZY_MARGIN])


def same_name(spoken: str | None, stored: str | None) -> bool:
    """Whether a caller's name is the name on a booking, leniently: case, umlauts ("Müller" is
    "Mueller"), accents, punctuation and spacing folded. Typos are not forgiven here: the name
    is half of what proves a booking is the caller's."""
    if not spoken or not stored:
        return False
    folded = "".join(normalize(spoken).split())
    return bool(folded) and folded == "".join(normalize(stored).split())
