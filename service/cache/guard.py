"""The lexical guard on a semantic match: what embeddings blur, checked by the words.

Sentence embeddings like MiniLM's average over the words, so they hardly see order or
a swapped name: "Convert 10 miles to kilometers" and "Convert 10 kilometers to miles"
score 0.99, "open on Sundays" and "open on Mondays" 0.94 (tests/cache/paraphrases.py).
No cosine threshold separates those from true paraphrases, and serving one for the other
is a wrong answer. So a match above the threshold must also pass three checks:

- the same numbers, digits or number words and ordinals ("10", "second");
- the same names: capitalised words past a sentence's first ("France", "Celsius");
- no word answered by its opposite ("open" / "close", "enable" / "disable");
- around a word of direction or comparison both use ("to", "than", "from"...), the
  same words on each side: "miles to kilometers" is not "kilometers to miles".

They cost recall (a paraphrase that renames or reorders is a miss, which only costs an
upstream call) for precision (a hit that answers another question).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:[.,]\d+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NUMBER_WORDS = _words(
    "zero one two three four five six seven eight nine ten eleven twelve twenty thirty "
    "forty fifty hundred thousand million billion first second third fourth fifth sixth "
    "seventh eighth ninth tenth last half double twice once"
)
_STOP = _words(
    "a an the is are was were be been being do does did doing have has had i me my you "
    "your we our it its of to in on at by for with from into about as and or but if "
    "how what which who whom whose when where why can could would should will shall may "
    "might must please tell give show explain there this that these those so just "
    "any some all s t get make"
)
_SENTENCE_END = frozenset(".?!:;")
# Words whose two sides are not interchangeable.
_RELATIONS = _words("to than into from versus vs before after over under")
_OPPOSITES = {
    frozenset(pair.split("/"))
    for pair in _words(
        "open/close opened/closed opening/closing enable/disable enabled/disabled "
        "install/uninstall add/remove increase/decrease largest/smallest biggest/smallest "
        "highest/lowest tallest/shortest longest/shortest maximum/minimum max/min "
        "more/less most/least best/worst buy/sell import/export upload/download "
        "start/stop on/off in/out up/down hot/cold true/false yes/no before/after "
        "first/last lock/unlock show/hide encrypt/decrypt join/leave login/logout "
        "subscribe/unsubscribe upgrade/downgrade win/lose pros/cons benefits/risks "
        "advantages/disadvantages create/delete accept/reject allow/deny to/from "
        "into/out above/below read/write push/pull send/receive"
    )
}


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(word, is a name) for each word: a name is capitalised and not a sentence's first."""
    out = []
    start = True
    for match in _WORD.finditer(text):
        word = match.group()
        before = text[: match.start()].rstrip()
        start = not before or before[-1] in _SENTENCE_END or before[-1] in "\"'("
        out.append((word.lower(), word[0].isupper() and not start and word.lower() != "i"))
    return out


def _numbers(tokens: list[tuple[str, bool]]) -> list[str]:
    return sorted(w for w, _ in tokens if w[0].isdigit() or w in _NUMBER_WORDS)


def _names(tokens: list[tuple[str, bool]]) -> set[str]:
    return {w.removesuffix("'s").removesuffix("s") for w, name in tokens if name}


def _opposed(a: set[str], b: set[str]) -> bool:
    return any(frozenset((x, y)) in _OPPOSITES for x in a - b for y in b - a)


def _sides(words: list[str]) -> dict[str, tuple[str, str]]:
    """For each relation word, the nearest content words before and after it."""
    out = {}
    for i, word in enumerate(words):
        if word in _RELATIONS and word not in out:
            before = next((w for w in reversed(words[:i]) if w not in _STOP), "")
            after = next((w for w in words[i + 1 :] if w not in _STOP), "")
            out[word] = (before, after)
    return out


def same_question(a: str, b: str) -> bool:
    """Whether a cached answer to `a` may answer `b`, as far as the words can tell."""
    ta, tb = _tokens(a), _tokens(b)
    if _numbers(ta) != _numbers(tb) or _names(ta) != _names(tb):
        return False
    wa, wb = [w for w, _ in ta], [w for w, _ in tb]
    if _opposed(set(wa), set(wb)):
        return False
    sa, sb = _sides(wa), _sides(wb)
    return all(sa[r] == sb[r] for r in sa.keys() & sb.keys())
