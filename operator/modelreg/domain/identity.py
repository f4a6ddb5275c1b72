"""Who is the same person: usernames compared by a confusable-safe skeleton.

Kubernetes compares usernames byte for byte, so `bob`, `Bob`, `bob` + a zero-width space, `bob`
with a Cyrillic `o` and `bob` in full-width letters are five identities to it. For counting distinct approvers (and for
"never the requester") they are one: NFKC folds compatibility forms (full-width), invisible
format characters are dropped, letters that look Latin become Latin (Unicode's confusables
data, via confusable_homoglyphs), and case is folded.
"""

from __future__ import annotations

import functools
import unicodedata

from confusable_homoglyphs import confusables


@functools.lru_cache(maxsize=4096)
def _latin_lookalike(char: str) -> str:
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"])
    if not found:
        return char
    latin = [h["c"] for h in found[0]["homoglyphs"] if h["n"].startswith("LATIN")]
    return latin[0] if latin else char


@functools.lru_cache(maxsize=4096)
def skeleton(username: str) -> str:
    folded = unicodedata.normalize("NFKC", username)
    visible = "".join(c for c in folded if unicodedata.category(c) != "Cf" and not c.isspace())
    if visible.isascii():
        return visible.casefold()
    return unicodedata.normalize("NFKC", "".join(_latin_lookalike(c) for c in visible)).casefold()


def same_person(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and skeleton(a) == skeleton(b)
