"""The in-process search index: prefix, typo tolerance, every word must match, ranking by
field weight; odd input is no error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.catalog.search_index import SearchIndex, trigrams

DOCS = [
    ("SKU1", "Amul Taaza Toned Milk 500 ml", "Amul", "dairy bread eggs"),
    ("SKU2", "Mother Dairy Full Cream Milk", "Mother Dairy", "dairy bread eggs"),
    ("SKU3", "Amul Butter 100 g", "Amul", "dairy bread eggs"),
    ("SKU4", "Lays Classic Salted Chips", "Lays", "snacks munchies"),
    ("SKU5", "Milky Mist Paneer", "Milky Mist", "dairy bread eggs"),
    ("SKU6", "Cream Biscuits", "Amulya Foods", "snacks munchies"),
]
INDEX = SearchIndex(DOCS)


def test_prefix_and_whole_words() -> None:
    assert INDEX.search("amu", limit=10)[:2] == ["SKU1", "SKU3"]  # names first, then brand
    assert set(INDEX.search("amu", limit=10)) == {"SKU1", "SKU3", "SKU6"}
    assert INDEX.search("milk", limit=10)[:2] == ["SKU1", "SKU2"]  # exact before "milky"
    assert "SKU5" in INDEX.search("milk", limit=10)


def test_every_word_must_match() -> None:
    assert INDEX.search("amul milk", limit=10) == ["SKU1"]
    assert INDEX.search("cream", limit=10) == ["SKU2", "SKU6"]
    assert INDEX.search("amul chips", limit=10) == []


def test_a_typo_still_finds_the_brand() -> None:
    assert "SKU1" in INDEX.search("ammul", limit=10)  # a doubled letter
    assert INDEX.search("chipz", limit=10) == ["SKU4"]
    assert INDEX.search("zzzz", limit=10) == []


def test_category_words_are_searchable_but_weigh_least() -> None:
    hits = INDEX.search("dairy", limit=10)
    assert hits[0] == "SKU2" and set(hits) == {"SKU1", "SKU2", "SKU3", "SKU5"}


def test_limit_and_trigrams() -> None:
    assert len(INDEX.search("a", limit=2)) == 2
    assert trigrams("amul") == {"  a", " am", "amu", "mul", "ul "}


@given(st.text(max_size=60))
def test_any_input_is_answered(query: str) -> None:
    hits = INDEX.search(query, limit=5)
    assert len(hits) <= 5 and set(hits) <= {d[0] for d in DOCS}
