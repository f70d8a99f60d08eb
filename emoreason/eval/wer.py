"""Word error rate with AudioBench's text normaliser, aggregated at corpus level.

Normaliser steps, in AudioBench's order (FACTS.md):
1. lowercase;
2. Whisper's English normaliser (transformers' ``EnglishTextNormalizer``; we pass an empty
   British->American spelling map because the map ships with Whisper tokenizer files we do not
   have offline — spelling variants therefore count as errors, as they would for any model);
3. digits 0-20 and the tens back to words, plus a few contraction spellings;
4. drop bracketed spans ("[laughter]", "(noise)", "<unk>");
5. collapse spaces, expand contractions, remove Kaldi non-words, remove punctuation;
6. drop hesitations uh / umm / um / er / ah;
7. an empty result becomes "empty" (so an empty reference still has one word).

Corpus WER = sum(S + D + I) / sum(S + D + H) over all utterances (jiwer on the lists), not the
mean of per-utterance WERs.
"""
from __future__ import annotations

import re
from functools import lru_cache

_NUMBERS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
    "7": "seven", "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve",
    "13": "thirteen", "14": "fourteen", "15": "fifteen", "16": "sixteen", "17": "seventeen",
    "18": "eighteen", "19": "nineteen", "20": "twenty", "30": "thirty", "40": "forty",
    "50": "fifty", "60": "sixty", "70": "seventy", "80": "eighty", "90": "ninety",
}
_CONTRACTIONS = {
    "won't": "will not", "can't": "can not", "cannot": "can not", "let's": "let us",
    "n't": " not", "'re": " are", "'s": " is", "'d": " would", "'ll": " will", "'ve": " have", "'m": " am",
}
_KALDI_NONWORDS = {"<unk>", "<noise>", "<spoken_noise>", "<sil>", "[noise]", "[laughter]", "[vocalized-noise]"}
_HESITATIONS = {"uh", "umm", "um", "er", "ah", "uhm", "erm"}
_BRACKETS = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>|\{[^}]*\}")
_NUMBER = re.compile(r"\b(\d{1,2})\b")
_PUNCT = re.compile(r"[^\w\s']|_")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _whisper_normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def _expand_contractions(text: str) -> str:
    for short, full in _CONTRACTIONS.items():
        if short.startswith("'") or short == "n't":
            text = text.replace(short, full)
        else:
            text = re.sub(rf"\b{re.escape(short)}\b", full, text)
    return text


def normalize(text: str, whisper: bool = True) -> str:
    """AudioBench-style normalisation of one transcript (see module docstring for the steps)."""
    text = text.lower()
    # Kaldi non-words are bracketed tokens: remove them before the Whisper normaliser eats the brackets.
    for w in _KALDI_NONWORDS:
        text = text.replace(w, " ")
    if whisper:
        text = _whisper_normalizer()(text)
    text = _NUMBER.sub(lambda m: _NUMBERS.get(m.group(1), m.group(1)), text)
    text = _BRACKETS.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = _expand_contractions(text)
    text = _PUNCT.sub(" ", text).replace("'", " ")
    words = [w for w in text.split() if w not in _HESITATIONS]
    return " ".join(words) if words else "empty"


def corpus_wer(references: list[str], hypotheses: list[str], normalise: bool = True) -> dict[str, float]:
    """Corpus-level WER (fraction, not %) and its error counts.

    Returns ``{"wer", "substitutions", "deletions", "insertions", "hits", "n_ref_words"}``.
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        return {"wer": 0.0, "substitutions": 0, "deletions": 0, "insertions": 0, "hits": 0, "n_ref_words": 0}
    refs = [normalize(r) if normalise else (r or "empty") for r in references]
    hyps = [normalize(h) if normalise else (h or "empty") for h in hypotheses]
    out = jiwer.process_words(refs, hyps)
    s, d, i, h = out.substitutions, out.deletions, out.insertions, out.hits
    return {"wer": (s + d + i) / max(1, s + d + h), "substitutions": s, "deletions": d,
            "insertions": i, "hits": h, "n_ref_words": s + d + h}


def utterance_wer(reference: str, hypothesis: str) -> float:
    """WER of one utterance after normalisation (for per-row details)."""
    return corpus_wer([reference], [hypothesis])["wer"]
