"""The offline teacher: no LLM, explanations composed from transcript, gold label and cues.

The embedded default, so ``emoreason data teach`` works with no network and no weights. Every
explanation states the gold label, quotes a salient span of the transcript in double quotes
(exactly as written, so quote checks pass) and mentions the measured cues when there are any.
The sentence pattern is picked by a stable hash of the row id, which gives the training targets
some variety without randomness between runs.
"""
from __future__ import annotations

import hashlib
import re

from emoreason.teacher.base import TeachRequest
from emoreason.teacher.templates import SENTIMENT_TASKS
from emoreason.labels import SYNONYMS

# why the words fit the label: "the phrasing is ..." (no other label's synonyms in here)
_READING = {
    "angry": "the wording is confrontational and puts the blame on someone",
    "happy": "the wording is warm and upbeat",
    "sad": "the wording dwells on loss and on things going wrong",
    "neutral": "the wording is matter-of-fact and simply passes on information",
    "frustrated": "the wording signals being blocked and fed up with the situation",
    "excited": "the wording is energetic and looks forward to what comes next",
    "surprised": "the wording reacts to something unexpected",
    "fearful": "the wording expresses concern about what might happen",
    "disgusted": "the wording shows aversion and distaste",
    "other": "the wording does not fit one of the common categories",
    "positive": "the wording is favourable and approving",
    "negative": "the wording is critical or unfavourable",
}
# the implicit context a summary points to
_CONTEXT = {
    "angry": "they feel wronged and want it to stop",
    "happy": "things are going well for them",
    "sad": "something that matters to them has gone wrong",
    "neutral": "they are simply exchanging information",
    "frustrated": "their efforts keep running into obstacles",
    "excited": "they are eager about what is coming",
    "surprised": "something caught them off guard",
    "fearful": "they expect that something bad may happen",
    "disgusted": "they find something offensive",
    "other": "their state is not one of the usual categories",
    "positive": "they view the situation favourably",
    "negative": "they view the situation unfavourably",
}
_SENTIMENT_NEUTRAL = ("the wording is balanced, neither approving nor critical", "they take no side")

_PATTERNS = {
    ("detailed", False): (
        'The words "{quote}" carry the {label} tone: {reading}.{cues}',
        'Saying "{quote}", the speaker reveals that they are {label}, because {reading}.{cues}',
        'In "{quote}", {reading}, which marks the speaker as {label}.{cues}',
        'Evidence for {label}: the speaker says "{quote}", and {reading}.{cues}',
    ),
    ("summary", False): (
        'Taken as a whole, the speaker comes across as {label}: saying "{quote}" suggests that {context}.{cues}',
        'The speaker is {label}; behind "{quote}" is a sense that {context}.{cues}',
        'Reading between the lines of "{quote}", the speaker is {label}, as {context}.{cues}',
    ),
    ("detailed", True): (
        'The words "{quote}" show the {label} sentiment: {reading}.{cues}',
        'Saying "{quote}", the speaker expresses a {label} sentiment, because {reading}.{cues}',
        'Evidence for a {label} sentiment: the speaker says "{quote}", and {reading}.{cues}',
    ),
    ("summary", True): (
        'Overall the sentiment is {label}: saying "{quote}" suggests that {context}.{cues}',
        'The speaker\'s sentiment is {label}; behind "{quote}" is a sense that {context}.{cues}',
    ),
}
# the words carry no emotion of their own (e.g. "The store closes at nine."): say so, and point to the
# delivery instead of inventing a reading of the words
_PLAIN_WORDS = {
    ("detailed", False): 'The words "{quote}" are plain in themselves, so the {label} state comes from how they are said.{cues}',
    ("summary", False): 'Nothing in "{quote}" is emotional on its face; the speaker\'s {label} state shows in the voice rather than in the words.{cues}',
    ("detailed", True): 'The words "{quote}" are plain in themselves, so the {label} sentiment comes from how they are said.{cues}',
    ("summary", True): 'Nothing in "{quote}" takes a side on its face; the {label} sentiment shows in the voice rather than in the words.{cues}',
}
_NO_TRANSCRIPT = "The speaker sounds {label}; with no transcript to quote, this rests on how it was said.{cues}"
_CUES = (" Acoustically, the clip shows {cues}.", " The delivery fits this: {cues}.", " How it was said matters too: {cues}.")

# words that make a span emotionally salient, besides the label synonyms themselves
_CHARGED = {
    "love", "hate", "great", "terrible", "awful", "amazing", "wonderful", "horrible", "sorry", "thank",
    "thanks", "please", "never", "can't", "cannot", "won't", "believe", "god", "wow", "oh", "really",
    "why", "stop", "again", "lost", "miss", "kill", "best", "worst", "hope", "yes", "no", "damn",
    "ridiculous", "unbelievable", "fantastic", "scary", "gross", "enough",
}
MAX_QUOTE_WORDS = 12


def _pick(options: tuple[str, ...], key: str) -> str:
    h = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big")
    return options[h % len(options)]


def has_verbal_evidence(text: str) -> bool:
    """Whether ``text`` carries emotion in its words: an emotion word, a charged word, or "!"."""
    words = re.findall(r"[\w']+", text.lower())
    return "!" in text or any(w in SYNONYMS or w in _CHARGED for w in words)


def salient_span(transcript: str, max_words: int = MAX_QUOTE_WORDS) -> str:
    """The most emotionally charged clause of ``transcript``, verbatim (at most ``max_words``
    words, trailing punctuation removed); "" for an empty transcript."""
    clauses = [m for m in re.finditer(r"[^.!?;:,]+[.!?;:,]?", transcript) if re.search(r"\w", m.group())]
    if not clauses:
        return ""

    def score(m: re.Match) -> float:
        words = re.findall(r"[\w']+", m.group().lower())
        s = sum(3 for w in words if w in SYNONYMS) + sum(2 for w in words if w in _CHARGED)
        s += 1.5 if m.group().rstrip().endswith(("!", "?")) else 0
        return s + min(len(words), 8) * 0.2  # prefer clauses with some substance

    best = max(clauses, key=score)
    text = best.group().strip()
    tokens = list(re.finditer(r"\S+", text))
    if len(tokens) > max_words:
        # keep the window around the first charged word, cut on word boundaries of the original
        lowered = [re.sub(r"[^\w']", "", t.group().lower()) for t in tokens]
        hot = next((i for i, w in enumerate(lowered) if w in SYNONYMS or w in _CHARGED), 0)
        start = max(0, min(hot - 2, len(tokens) - max_words))
        text = text[tokens[start].start() : tokens[start + max_words - 1].end()]
    return text.strip().rstrip(".,;:!?\"' ").strip()


def compose(request: TeachRequest) -> str:
    """The offline explanation for one ``summary`` / ``detailed`` request (deterministic in the
    request's fields). It follows the label sentence in the target, and restates the label itself
    so it stands alone too."""
    label = request.label
    sentiment = request.task in SENTIMENT_TASKS
    reading = _SENTIMENT_NEUTRAL[0] if sentiment and label == "neutral" else _READING.get(label, _READING["other"])
    context = _SENTIMENT_NEUTRAL[1] if sentiment and label == "neutral" else _CONTEXT.get(label, _CONTEXT["other"])
    cues = ""
    if request.cue_phrases:
        cues = _pick(_CUES, request.row_id + "cues").format(cues=_join(list(request.cue_phrases)))
    quote = salient_span(request.transcript or "")
    if not quote:
        return _NO_TRANSCRIPT.format(label=f"{label} (sentiment)" if sentiment else label, cues=cues)
    patterns = _PATTERNS[(request.style, sentiment)]
    if label != "neutral" and not has_verbal_evidence(request.transcript):
        patterns = (_PLAIN_WORDS[(request.style, sentiment)],)
    text = _pick(patterns, request.row_id + request.style).format(
        label=label, quote=quote, reading=reading, context=context, cues=cues
    )
    return text[0].upper() + text[1:]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class OfflineTeacher:
    """Teacher backend that composes explanations locally (see module docstring)."""

    name = "offline"
    model = None
    max_concurrency = None

    async def complete(self, request: TeachRequest) -> str:
        return compose(request)

    async def aclose(self) -> None:
        return None
