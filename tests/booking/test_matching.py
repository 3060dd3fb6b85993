"""Tolerant matching of spoken names, pure: normalization, each step, typos, ties, properties."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.booking.agent.matching import (
    MatchResult,
    distance,
    match,
    max_typos,
    normalize,
)

SERVICES = [
    ("svc-herren", "Herrenhaarschnitt"),
    ("svc-damen", "Damenhaarschnitt"),
    ("svc-faerben", "Färben"),
    ("svc-bart", "Bartpflege"),
]
STAFF = [
    ("st-anna", "Anna Schmidt"),
    ("st-lukas", "Lukas Weber"),
    ("st-jonas", "Jonas"),
    ("st-john", "John"),
]


def unique(result: MatchResult[str]) -> str | None:
    assert result.status == "unique", result
    return result.id


# --- normalize and distance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Färben", "faerben"),
        ("faerben", "faerben"),
        ("FÄRBEN", "faerben"),
        ("FARBEN", "farben"),  # close to "faerben", but only for the fuzzy step
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("Größe", "groesse"),
        ("Übergröße", "uebergroesse"),
        ("A\u0308rger", "aerger"),  # decomposed umlaut
        ("Café  René", "cafe rene"),
        ("  Herren-Haarschnitt!  ", "herren haarschnitt"),
        ("Dr. Anna-Lena  O\u2019Brien", "dr anna lena obrien"),
        ("Waschen,\tSchneiden\n& Föhnen", "waschen schneiden foehnen"),
        ("", ""),
        (" -- ", ""),
        ("🄰", "a"),  # a compatibility form that decomposes to a capital
        ("İstanbul", "istanbul"),  # casefolding that yields a combining mark
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@given(st.text(max_size=30))
def test_normalize_is_idempotent_and_tidy(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()
    assert "  " not in once


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("kitten", "sitting", 3),
        ("herrenharschnitt", "herrenhaarschnitt", 1),
        ("farben", "faerben", 1),
        ("abc", "acb", 1),  # one transposition
        ("ca", "abc", 2),  # unrestricted Damerau-Levenshtein (OSA would say 3)
        ("jon", "jonas", 2),
        ("jon", "john", 1),
    ],
)
def test_distance(a: str, b: str, expected: int) -> None:
    assert distance(a, b) == expected
    assert distance(b, a) == expected


words = st.text(alphabet="abcde", max_size=7)


@given(words, words, words)
def test_distance_is_a_metric(a: str, b: str, c: str) -> None:
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, b) == distance(b, a)
    assert distance(a, b) <= max(len(a), len(b))
    assert distance(a, c) <= distance(a, b) + distance(b, c)


def test_typo_budget_grows_with_length() -> None:
    assert [max_typos(n) for n in (3, 5, 6, 10, 11, 30)] == [1, 1, 2, 2, 3, 3]


# --- the steps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "herrenhaarschnitt",
        "Herrenhaarschnitt",
        "Herren-Haarschnitt",
        "HERREN HAARSCHNITT",
        "Herrenharschnitt",  # typo
        "Hernhaarschnitt",  # two typos in 17 letters
        "einen Herrenhaarschnitt, bitte",
    ],
)
def test_herrenhaarschnitt(query: str) -> None:
    assert unique(match(query, SERVICES)) == "svc-herren"


def test_a_compound_part_is_ambiguous_between_both_compounds() -> None:
    result = match("Haarschnitt", SERVICES)
    assert result.status == "ambiguous"
    assert result.id is None
    # Best first: the name the query covers most of.
    assert result.candidates == [
        ("svc-damen", "Damenhaarschnitt"),
        ("svc-herren", "Herrenhaarschnitt"),
    ]
    assert result.names == ["Damenhaarschnitt", "Herrenhaarschnitt"]


def test_a_compound_head_counts_like_a_whole_word() -> None:
    candidates = [*SERVICES, ("svc-kinder", "Haarschnitt für Kinder")]
    assert match("Haarschnitt", candidates).names == [
        "Haarschnitt für Kinder",
        "Damenhaarschnitt",
        "Herrenhaarschnitt",
    ]
    staff = [("1", "Peter Goldschmidt"), ("2", "Anna Schmidt")]
    assert match("Schmidt", staff).names == ["Anna Schmidt", "Peter Goldschmidt"]


def test_a_distinctive_compound_part_is_unique() -> None:
    assert unique(match("Bart", SERVICES)) == "svc-bart"
    assert unique(match("Herren", SERVICES)) == "svc-herren"
    assert match("Schnitt", SERVICES).status == "ambiguous"


@pytest.mark.parametrize("query", ["Färben", "faerben", "FAERBEN", "Farben", "färbn", "Färbe"])
def test_faerben(query: str) -> None:
    result = match(query, SERVICES)
    assert unique(result) == "svc-faerben"
    assert result.name == "Färben"
    assert result.candidates == [("svc-faerben", "Färben")]


@pytest.mark.parametrize("query", ["Strasse", "Straße", "STRASSE", "strase"])
def test_strasse(query: str) -> None:
    assert unique(match(query, [("br-s", "Straße"), ("br-m", "Mitte")])) == "br-s"


def test_street_names_by_part() -> None:
    branches = [("br-1", "Hauptstraße"), ("br-2", "Bahnhofstrasse"), ("br-3", "Mitte")]
    assert unique(match("Hauptstrasse", branches)) == "br-1"
    assert unique(match("Bahnhofstraße", branches)) == "br-2"
    assert match("Straße", branches).status == "ambiguous"


@pytest.mark.parametrize("query", ["anna", "Anna", "ANNA", "bei Anna", "Frau Schmidt", "Ana"])
def test_anna(query: str) -> None:
    assert unique(match(query, STAFF)) == "st-anna"


def test_jon_is_john_because_jonas_is_two_edits_away() -> None:
    # "jon" -> "john": 1 edit (budget 1 for 4 letters); "jon" -> "jonas": 2 edits (budget 1).
    assert unique(match("Jon", STAFF)) == "st-john"
    assert unique(match("Jonas", STAFF)) == "st-jonas"
    assert unique(match("John", STAFF)) == "st-john"


def test_equally_close_typos_are_ambiguous() -> None:
    result = match("Jon", [("2", "Joan"), ("1", "John"), ("3", "Jonas")])
    assert result.status == "ambiguous"
    assert result.candidates == [("2", "Joan"), ("1", "John")]  # by name


def test_nothing_close_is_none() -> None:
    for query in ("xyz", "Massage", "Zahnreinigung", "a", "ab"):
        result = match(query, SERVICES)
        assert result == MatchResult("none"), query
    assert match("Herrenhaarschnitt", []).status == "none"


@pytest.mark.parametrize("query", ["", "   ", " - ", None])
def test_empty_query_is_none(query: str | None) -> None:
    assert match(query, SERVICES) == MatchResult("none")


def test_exact_id_wins() -> None:
    assert unique(match("svc-faerben", SERVICES)) == "svc-faerben"
    assert unique(match("  svc-damen ", SERVICES)) == "svc-damen"
    # An id beats a name that happens to equal it.
    tricky = [("a1", "Bartpflege"), ("Bartpflege", "Färben")]
    assert unique(match("Bartpflege", tricky)) == "Bartpflege"


def test_ids_of_any_type() -> None:
    result = match("7", [(7, "Färben"), (8, "Bartpflege")])
    assert result.status == "unique"
    assert result.id == 7


def test_exact_name_beats_word_and_part_matches() -> None:
    candidates = [("1", "Haarschnitt"), ("2", "Herrenhaarschnitt"), ("3", "Haarschnitt Kinder")]
    assert unique(match("haarschnitt", candidates)) == "1"
    assert unique(match("Haarschnitt für Kinder", candidates)) == "3"


def test_filler_words_are_dropped_on_both_sides() -> None:
    candidates = [("1", "Haarschnitt für Kinder"), ("2", "Die Dauerwelle"), ("3", "Dauerwelle")]
    assert unique(match("einen Haarschnitt für Kinder bitte", candidates)) == "1"
    assert unique(match("Haarschnitt Kinder", candidates)) == "1"
    # The exact full name first, only then the names without fillers.
    assert unique(match("Dauerwelle", candidates)) == "3"
    assert unique(match("die Dauerwelle", candidates)) == "2"


def test_whole_word_beats_a_longer_word_with_that_prefix() -> None:
    staff = [("1", "Annabell Meier"), ("2", "Anna Schmidt")]
    assert unique(match("Anna", staff)) == "2"
    assert unique(match("Annabell", staff)) == "1"


def test_same_first_name_is_ambiguous() -> None:
    staff = [("2", "Anna Weber"), ("1", "Anna Schmidt"), ("3", "Lukas Weber")]
    result = match("Anna", staff)
    assert result.status == "ambiguous"
    assert result.names == ["Anna Schmidt", "Anna Weber"]
    assert unique(match("Anna Weber", staff)) == "2"
    assert unique(match("Anna Webr", staff)) == "2"
    assert match("Weber", staff).names == ["Anna Weber", "Lukas Weber"]


def test_duplicate_names_are_ambiguous_by_id() -> None:
    result = match("Färben", [("b", "Färben"), ("a", "Färben")])
    assert result.status == "ambiguous"
    assert result.candidates == [("a", "Färben"), ("b", "Färben")]


def test_fuzzy_margin() -> None:
    # 7 letters, one edit from the first and two from the second (both within budget):
    # scores 6/7 and 5/7 differ by more than the margin (1/10) -> unique.
    assert unique(match("Massagx", [("2", "Massaxe"), ("1", "Massage")])) == "1"
    # 10 letters: 9/10 and 8/10 differ by exactly the margin -> ambiguous, closer first.
    result = match("Dauerwele", [("2", "Dauerwalle"), ("1", "Dauerwelle")])
    assert result.status == "ambiguous"
    assert result.names == ["Dauerwelle", "Dauerwalle"]


def test_order_does_not_depend_on_the_input_order() -> None:
    for query in ("Haarschnitt", "Jon", "Anna"):
        pool = [*SERVICES, *STAFF, ("x", "Joan"), ("y", "Anna Weber")]
        assert match(query, pool) == match(query, list(reversed(pool)))


# --- properties -----------------------------------------------------------------------------

# Real service names, some close to each other (compounds sharing a part, one word apart).
SERVICE_NAMES = [
    "Herrenhaarschnitt",
    "Damenhaarschnitt",
    "Kinderhaarschnitt",
    "Haarschnitt für Kinder",
    "Färben",
    "Wimpern färben",
    "Strähnchen",
    "Bartpflege",
    "Dauerwelle",
    "Föhnen",
    "Waschen und Schneiden",
    "Waschen und Föhnen",
    "Maniküre",
    "Pediküre",
    "Augenbrauen zupfen",
    "Kopfmassage",
    "Hochsteckfrisur",
]
# Names far enough apart that one typo cannot bring a query near another name.
DISTINCT_NAMES = [
    "Herrenhaarschnitt",
    "Färben",
    "Bartpflege",
    "Dauerwelle",
    "Maniküre",
    "Augenbrauen zupfen",
    "Kopfmassage",
    "Strähnchen",
    "Hochsteckfrisur",
    "Nageldesign",
    "Wimpernlifting",
]


def test_distinct_names_are_pairwise_far_apart() -> None:
    for a, b in combinations(DISTINCT_NAMES, 2):
        keys_a = [normalize(a).replace(" ", ""), *normalize(a).split()]
        keys_b = [normalize(b).replace(" ", ""), *normalize(b).split()]
        assert min(distance(x, y) for x in keys_a for y in keys_b) >= 5, (a, b)


def _variant(name: str, how: int) -> str:
    """The same name as a caller or a speech recognizer might pass it."""
    return [
        name,
        name.upper(),
        name.lower(),
        name.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue"),
        name.replace(" ", "-"),
        f"  {name}  ",
        f"einen {name} bitte",
        "".join(name.split()),
    ][how]


@given(
    names=st.lists(st.sampled_from(SERVICE_NAMES), min_size=1, unique=True),
    pick=st.integers(min_value=0),
    how=st.integers(min_value=0, max_value=7),
)
def test_every_name_finds_itself(names: list[str], pick: int, how: int) -> None:
    candidates = [(f"id-{SERVICE_NAMES.index(name)}", name) for name in names]
    target_id, name = candidates[pick % len(candidates)]
    result = match(_variant(name, how), candidates)
    assert result.status == "unique"
    assert result.id == target_id
    assert result.name == name


@given(
    names=st.lists(st.sampled_from(DISTINCT_NAMES), min_size=1, unique=True),
    pick=st.integers(min_value=0),
    position=st.integers(min_value=0),
    letter=st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    edit=st.sampled_from(["substitute", "delete", "insert", "transpose"]),
)
def test_one_typo_still_finds_the_name_among_distinct_names(
    names: list[str], pick: int, position: int, letter: str, edit: str
) -> None:
    candidates = [(f"id-{DISTINCT_NAMES.index(name)}", name) for name in names]
    target_id, name = candidates[pick % len(candidates)]
    spelled = normalize(name)
    i = position % len(spelled)
    typo = {
        "substitute": spelled[:i] + letter + spelled[i + 1 :],
        "delete": spelled[:i] + spelled[i + 1 :],
        "insert": spelled[:i] + letter + spelled[i:],
        "transpose": spelled[:i] + spelled[i + 1 : i + 2] + spelled[i : i + 1] + spelled[i + 2 :],
    }[edit]
    assume(normalize(typo))
    result = match(typo, candidates)
    assert result.status == "unique", (typo, result)
    assert result.id == target_id
