"""An in-process search index over one store's catalogue (a few thousand SKUs).

Words are what PostgreSQL's ``simple`` text search config would make of them: lower-case
runs of letters and digits, from the name (weight 1.0), the brand (0.4) and the
category's slug (0.2, ``dairy-bread-eggs`` gives three words) - ``ts_rank``'s default
weights for A, B and C. Every word of the query must match a word of the product:

- as a prefix ("amu" finds Amul; the word itself scores 1.0, a longer word 0.9), or
- by trigrams, as ``pg_trgm``'s ``word_similarity`` measures (the share of the query
  word's trigrams found in the product's word, at least 0.6): "ammul" finds Amul.

A product scores the sum over query words of its best match x the field's weight.
Answers are the candidates by score; the caller puts in-stock items first.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable

WORD = re.compile(r"[^\W_]+", re.UNICODE)
NAME, BRAND, CATEGORY = 1.0, 0.4, 0.2
PREFIX, EXACT = 0.9, 1.0
FUZZY_THRESHOLD = 0.6
FUZZY_WEIGHT = 0.7
MAX_QUERY_WORDS = 8


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def trigrams(word: str) -> set[str]:
    """pg_trgm's trigrams of one word: padded with two spaces in front and one behind."""
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class SearchIndex:
    def __init__(self, docs: Iterable[tuple[str, str, str, str]]) -> None:
        """``docs``: (sku_id, name, brand, category_id) of each product sold here."""
        self.skus: list[str] = []
        postings: dict[str, dict[int, float]] = defaultdict(dict)
        for doc, (sku, name, brand, category) in enumerate(docs):
            self.skus.append(sku)
            for text, weight in ((name, NAME), (brand, BRAND), (category, CATEGORY)):
                for w in words(text):
                    if postings[w].get(doc, 0.0) < weight:
                        postings[w][doc] = weight
        self.postings = dict(postings)
        self.vocabulary = sorted(self.postings)
        by_trigram: dict[str, set[str]] = defaultdict(set)
        for w in self.vocabulary:
            for t in trigrams(w):
                by_trigram[t].add(w)
        self.by_trigram = dict(by_trigram)

    def _matches(self, query_word: str) -> dict[str, float]:
        """Vocabulary words matching ``query_word``, with the match's quality."""
        found: dict[str, float] = {}
        start = bisect_left(self.vocabulary, query_word)
        for w in self.vocabulary[start:]:
            if not w.startswith(query_word):
                break
            found[w] = EXACT if w == query_word else PREFIX
        if len(query_word) < 3:  # too short for a typo to be told from another word
            return found
        wanted = trigrams(query_word)
        shared: dict[str, int] = defaultdict(int)
        for t in wanted:
            for w in self.by_trigram.get(t, ()):
                shared[w] += 1
        for w, n in shared.items():
            similarity = n / len(wanted)
            if similarity >= FUZZY_THRESHOLD and w not in found:
                found[w] = FUZZY_WEIGHT * similarity
        return found

    def search(self, query: str, *, limit: int) -> list[str]:
        """SKUs matching every word of ``query``, best first (ties by SKU)."""
        terms = list(dict.fromkeys(words(query)))[:MAX_QUERY_WORDS]
        if not terms:
            return []
        scores: dict[int, float] | None = None
        for term in terms:
            best: dict[int, float] = {}
            for w, quality in self._matches(term).items():
                for doc, weight in self.postings[w].items():
                    score = quality * weight
                    if score > best.get(doc, 0.0):
                        best[doc] = score
            if scores is None:
                scores = best
            else:
                scores = {d: s + best[d] for d, s in scores.items() if d in best}
            if not scores:
                return []
        assert scores is not None
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], self.skus[kv[0]]))
        return [self.skus[doc] for doc, _ in ranked[:limit]]
