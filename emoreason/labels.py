"""Label vocabularies and the one synonym table every stage shares.

Canonical labels are lowercase adjectives ("angry", "happy", ...). Importers normalise corpus
labels with :func:`normalize_label`; the inference engine scores the candidates of a vocabulary;
the offline judge extracts labels from free text with the same synonym table (text/label_extraction.py adds
negation and hedging on top).
"""
from __future__ import annotations

from emoreason.errors import UserError

# Canonical vocabularies (paper section 4.1, appendix A.1).
IEMOCAP = ["angry", "happy", "neutral", "sad", "disgusted", "fearful", "surprised", "frustrated", "excited", "other"]
MELD_EMOTION = ["neutral", "happy", "disgusted", "sad", "surprised", "angry", "fearful"]
SENTIMENT = ["positive", "negative", "neutral"]
EMOTION2VEC = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown"]

VOCABULARIES: dict[str, list[str]] = {
    "iemocap": IEMOCAP,
    "meld": MELD_EMOTION,
    "sentiment": SENTIMENT,
    "emotion2vec": EMOTION2VEC,
}

# surface form -> canonical label. Covers corpus spellings (IEMOCAP codes "ang", MELD "joy"),
# nouns and adjectives, and common inflections. Lowercase keys.
SYNONYMS: dict[str, str] = {
    # angry
    "angry": "angry", "anger": "angry", "ang": "angry", "angrily": "angry", "mad": "angry",
    "furious": "angry", "fury": "angry", "rage": "angry", "enraged": "angry", "irritated": "angry",
    "annoyed": "angry", "annoyance": "angry", "irate": "angry", "hostile": "angry",
    # happy
    "happy": "happy", "happiness": "happy", "hap": "happy", "joy": "happy", "joyful": "happy",
    "joyous": "happy", "glad": "happy", "cheerful": "happy", "delighted": "happy", "pleased": "happy",
    "content": "happy", "amused": "happy", "amusement": "happy",
    # sad
    "sad": "sad", "sadness": "sad", "unhappy": "sad", "sorrow": "sad", "sorrowful": "sad",
    "depressed": "sad", "gloomy": "sad", "melancholy": "sad", "upset": "sad", "grief": "sad",
    "disappointed": "sad", "disappointment": "sad", "down": "sad",
    # neutral
    "neutral": "neutral", "neu": "neutral", "calm": "neutral", "neutrality": "neutral",
    # disgusted
    "disgusted": "disgusted", "disgust": "disgusted", "dis": "disgusted", "disgusting": "disgusted",
    "revulsion": "disgusted", "repulsed": "disgusted",
    # fearful
    "fearful": "fearful", "fear": "fearful", "fea": "fearful", "afraid": "fearful", "scared": "fearful",
    "frightened": "fearful", "anxious": "fearful", "anxiety": "fearful", "terrified": "fearful",
    "nervous": "fearful", "worried": "fearful",
    # surprised
    "surprised": "surprised", "surprise": "surprised", "sur": "surprised", "astonished": "surprised",
    "amazed": "surprised", "shocked": "surprised", "startled": "surprised",
    # frustrated
    "frustrated": "frustrated", "frustration": "frustrated", "fru": "frustrated", "exasperated": "frustrated",
    # excited
    "excited": "excited", "excitement": "excited", "exc": "excited", "enthusiastic": "excited",
    "thrilled": "excited", "eager": "excited",
    # other
    "other": "other", "oth": "other", "xxx": "other",
    # sentiment
    "positive": "positive", "pos": "positive", "negative": "negative", "neg": "negative",
    # emotion2vec
    "unknown": "unknown", "<unk>": "unknown",
}


def normalize_label(raw: str, vocabulary: list[str] | None = None) -> str:
    """Corpus label -> canonical label (in ``vocabulary`` when given); raise UserError otherwise.

    ``normalize_label("Joy") == "happy"``; ``normalize_label("fru") == "frustrated"``. A label that
    maps outside ``vocabulary`` (e.g. "excited" for MELD) is an error, not a silent guess.
    """
    key = raw.strip().lower()
    if "/" in key:  # emotion2vec style "生气/angry"
        key = key.rsplit("/", 1)[-1]
    canon = SYNONYMS.get(key)
    if canon is None and vocabulary is not None and key in vocabulary:
        canon = key
    if canon is None:
        raise UserError(f"unknown label {raw!r}" + (f" (expected one of {vocabulary})" if vocabulary else ""))
    if vocabulary is not None and canon not in vocabulary:
        raise UserError(f"label {raw!r} ({canon}) is not in the vocabulary {vocabulary}")
    return canon


def sentiment_of(label: str) -> str:
    """Coarse sentiment of a canonical emotion label (used when a corpus has no sentiment column)."""
    if label in ("happy", "excited", "positive"):
        return "positive"
    if label in ("angry", "sad", "disgusted", "fearful", "frustrated", "negative"):
        return "negative"
    return "neutral"


# Near-synonym classes an LLM judge accepts for each other: the usual IEMOCAP 4-class merge
# (excited -> happy) plus frustration -> anger, which AudioBench's Llama-3-70B binary judge also
# rates as "covering the meaning" of the reference. Only the offline judge's default reading uses
# this; the classification metrics keep the classes apart.
NEAR_SYNONYMS: dict[str, str] = {"excited": "happy", "frustrated": "angry"}


def merged_label(label: str) -> str:
    """The near-synonym class of a canonical label: ``merged_label("excited") == "happy"``."""
    return NEAR_SYNONYMS.get(label, label)


# By default every emotion / sentiment training target starts with this sentence (label-only targets
# are just the sentence; reasoning targets continue after it). The inference engine scores exactly
# these sentences for its forced choice, so training and scoring agree on where the label is.
# Paper-faithful data (``data teach --no-label-prefix``, corpus answer sentences) trades that away.
LABEL_SENTENCES: dict[str, str] = {
    "emotion": "The speaker sounds {label}.",
    "sentiment": "The speaker's sentiment is {label}.",
}


def label_sentence(task: str, label: str) -> str:
    """``label_sentence("emotion", "angry") == "The speaker sounds angry."``"""
    return LABEL_SENTENCES.get(task, LABEL_SENTENCES["emotion"]).format(label=label)
