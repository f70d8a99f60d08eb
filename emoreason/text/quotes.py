"""Quotes in a prediction and the paper's quote scores (Fig. 5 / appendix A.3), offline versions.

* :func:`extract_quotes`: straight and curly double quotes, curly single quotes, and straight
  single-quoted spans that are not apostrophes ("speaker's", "don't", "the speakers' tone").
  The one quote extractor of the package: the teacher's checks and the inference engine use it too.
* :func:`quote_words` / :func:`normalize_quote`: the words quotes are matched on (lowercase,
  straight apostrophes, no punctuation); also what the teacher's fuzzy quote check compares.
* quotation score: % of predictions with at least one quote.
* :func:`groundedness`: fuzzy word alignment of each quote to the transcript: 2 direct quote
  (near-exact contiguous match), 1 faithful paraphrase (most words found in order), 0 not found.
  Numbers count the same spelled or in digits ("12 pages" quotes "twelve pages": Whisper writes
  digits for spoken numbers), through Whisper's English number normaliser.
* :data:`FUNCTION_WORDS` / :func:`has_content_word`: a quote of function words only ("the",
  "I will") is no evidence of anything; constrained decoding never closes one.
* :func:`relevance`: does the quote carry words associated with the gold label (its synonyms or
  cue words), 2; a generic affective cue (exclamation, intensifier, other emotion word of the
  same polarity), 1; otherwise 0.
The LLM judge scores the same two criteria with the paper's rubric (judges/llm.py).
"""
from __future__ import annotations

import re
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

from emoreason.labels import SYNONYMS, sentiment_of
from emoreason.text.spelling import american

_DOUBLE = re.compile(r'"([^"\n]{1,400})"|“([^”\n]{1,400})”|‘([^’\n]{1,400})’|«([^»\n]{1,400})»')
# A straight single quote opens after a non-word character and closes before one; apostrophes
# inside words ("it's") are skipped because they sit between letters.
_SINGLE = re.compile(r"(?<![\w'])'(?=[^\s'])([^'\n]{1,300}?(?:\w'\w[^'\n]{0,300}?)*)(?<=[^\s])'(?![\w])")
# letters and digits of any script (ASCII text gives exactly [a-z0-9]+): the teacher checks quotes
# of any transcript with these words, and a non-Latin quote must not normalise to nothing
_WORD = re.compile(r"[^\W_]+(?:'[^\W\d_]+)?")

# Words that make a quote evidence for a label beyond the label's own synonyms.
CUE_WORDS: dict[str, set[str]] = {
    "angry": {"hate", "stop", "damn", "shut", "enough", "stupid", "idiot", "how dare", "get out", "never", "ridiculous", "hell"},
    "frustrated": {"again", "still", "why", "always", "never", "enough", "tired", "can't", "come on", "seriously", "whatever", "told you"},
    "happy": {"love", "great", "wonderful", "awesome", "glad", "yay", "yes", "fun", "thank", "thanks", "nice", "good", "beautiful", "haha", "laughter", "perfect"},
    "excited": {"wow", "amazing", "can't wait", "yes", "awesome", "incredible", "oh my god", "fantastic", "finally", "love"},
    "sad": {"miss", "sorry", "lost", "alone", "cry", "died", "gone", "hurt", "never", "wish", "can't", "nobody", "tired"},
    "surprised": {"what", "really", "wow", "oh", "no way", "seriously", "wait", "whoa", "can't believe"},
    "fearful": {"scared", "help", "afraid", "what if", "hear that", "careful", "danger", "please", "hide", "run"},
    "disgusted": {"gross", "ew", "eww", "disgusting", "awful", "smell", "yuck", "nasty", "sick"},
    "neutral": {"okay", "ok", "yeah", "fine", "so", "well", "is", "what", "where", "when", "who"},
    "positive": {"love", "great", "good", "yes", "thank", "thanks", "wonderful", "awesome", "nice", "happy", "glad"},
    "negative": {"hate", "no", "never", "bad", "awful", "sorry", "can't", "stupid", "dropper", "terrible", "worst"},
}
FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every my your his her its our their
i me you he him she it we us they them i'm i've i'll i'd you're you've you'll he's she's it's we're
we've they're they've that's there's
in on at to of for from by with about into onto over under up down out off as than then
and or but nor if because when while though
is am are was were be been being do does did have has had will would shall should can could may
might must
there here
""".split())
"""Normalised English words that carry no meaning of their own (articles, pronouns, prepositions,
conjunctions, auxiliaries). Negations, interjections, question words and intensifiers are not
here: "no", "never", "don't", "what", "so" can be what makes a quote evidence."""

_INTENSIFIERS = {"so", "very", "really", "totally", "absolutely", "never", "always", "just", "such"}


def extract_quotes(text: str) -> list[str]:
    """Quoted spans of ``text`` in order of appearance (without the quote marks), deduplicated."""
    spans: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for m in _DOUBLE.finditer(text):
        body = next(g for g in m.groups() if g is not None)
        spans.append((m.start(), body))
        taken.append(m.span())
    for m in _SINGLE.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue  # a single-quoted span inside a double-quoted one is part of it
        spans.append((m.start(), m.group(1)))
    out: list[str] = []
    for _, body in sorted(spans):
        body = body.strip().strip(",;: ").strip()
        if body and _WORD.search(body.lower()) and body not in out:
            out.append(body)
    return out


def quote_words(text: str) -> list[str]:
    """Lowercased words of ``text`` (curly apostrophes straightened, punctuation dropped)."""
    return _WORD.findall(text.lower().replace("’", "'"))


def normalize_quote(text: str) -> str:
    """``text`` as its :func:`quote_words` joined by single spaces (for substring / fuzzy matching)."""
    return " ".join(quote_words(text))


def is_transcript_span(quote: str, transcript: str | None) -> bool:
    """``quote`` is a contiguous run of whole words of ``transcript`` after :func:`normalize_quote`
    (what constrained decoding guarantees); False without a transcript or words."""
    q = normalize_quote(quote)
    return bool(q and transcript) and f" {q} " in f" {normalize_quote(transcript or '')} "


def has_content_word(text: str) -> bool:
    """``text`` holds a word that is not in :data:`FUNCTION_WORDS` (any non-English word counts)."""
    return any(w not in FUNCTION_WORDS for w in quote_words(text))


@lru_cache(maxsize=1)
def _number_normalizer() -> Any:
    """Whisper's English number normaliser ("twelve" -> "12", "forty five" -> "45"); imported on
    the first quote that needs it (transformers is slow to import and most quotes never do)."""
    from transformers.models.whisper.english_normalizer import EnglishNumberNormalizer

    return EnglishNumberNormalizer()


def _digits_words(words: list[str]) -> list[str]:
    """``words`` with spelled English numbers written in digits."""
    return _number_normalizer()(" ".join(words)).split()


def ground_quote(quote: str, transcript: str) -> int:
    """0 / 1 / 2: not found / faithful paraphrase / direct quote of ``transcript``.

    Aligns the quote's words with the transcript's words: a contiguous match (or a near-exact one,
    ratio >= 0.85 over the best window) is direct; when at least 60% of the quote's words appear in
    the transcript in order it is a paraphrase. When either side holds a digit, both are compared
    again with spelled numbers in digits (``_digits_words``). British and American spellings are one
    word ("neighbor" quotes a spoken "neighbour"; Whisper's map, :mod:`emoreason.text.spelling`).
    """
    q, t = american(quote_words(quote)), american(quote_words(transcript))
    if not q or not t:
        return 0
    qs, ts = " ".join(q), " ".join(t)
    if f" {qs} " in f" {ts} ":
        return 2
    if any(c.isdigit() for c in qs + ts):  # "12 pages" for "twelve pages": the same words said
        q, t = _digits_words(q), _digits_words(t)
        qs, ts = " ".join(q), " ".join(t)
        if f" {qs} " in f" {ts} ":
            return 2
    sm = SequenceMatcher(None, t, q, autojunk=False)
    matched = sum(b.size for b in sm.get_matching_blocks())
    coverage = matched / len(q)
    # Best window of the transcript the size of the quote: near-exact means a direct quote with a
    # slip ("I won't" vs "I will not" is a paraphrase, "gonna" vs "going to" too).
    if len(t) >= len(q):
        best = max(SequenceMatcher(None, t[i:i + len(q)], q, autojunk=False).ratio()
                   for i in range(0, len(t) - len(q) + 1))
    else:
        best = SequenceMatcher(None, t, q, autojunk=False).ratio()
    if best >= 0.85:
        return 2
    return 1 if coverage >= 0.6 else 0


def groundedness(quotes: list[str], transcript: str) -> float:
    """Mean 0-2 grounding of ``quotes`` in ``transcript`` (0 when there are no quotes)."""
    if not quotes:
        return 0.0
    return sum(ground_quote(q, transcript) for q in quotes) / len(quotes)


def relevance(quotes: list[str], label: str) -> float:
    """0-2 estimate of how well ``quotes`` support ``label`` (best quote counts)."""
    if not quotes:
        return 0.0
    polarity = sentiment_of(label) if label not in ("positive", "negative") else label
    own = {w for w, c in SYNONYMS.items() if c == label} | CUE_WORDS.get(label, set())
    same_polarity = {w for w, c in SYNONYMS.items() if c != label and polarity != "neutral" and sentiment_of(c) == polarity}
    best = 0
    for q in quotes:
        low = " " + normalize_quote(q) + " "
        words = set(low.split())
        if any((" " + w + " ") in low for w in own):
            return 2.0
        if words & same_polarity or (polarity != "neutral" and ("!" in q or words & _INTENSIFIERS)):
            best = max(best, 1)
        elif polarity == "neutral" and not ("!" in q):
            best = max(best, 1)
    return float(best)
