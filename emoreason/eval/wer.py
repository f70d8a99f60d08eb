"""Word error rate with AudioBench's text normaliser, aggregated at corpus level.

Normaliser steps, in AudioBench's order (``preprocess_text_asr`` in AudioBench's
``text_normalizer/preprocess_text.py``):

1. lowercase;
2. Whisper's English normaliser: transformers' ``EnglishTextNormalizer`` with Whisper's
   British -> American spelling map (``english.json``, 1,739 entries, read from the
   ``whisper-normalizer`` package; the packaged Whisper tiny.en tokenizer has no
   ``normalizer.json``). It drops bracketed / parenthesised spans and "hmm / mm / uh / um", expands
   contractions ("can't" -> "can not", "'s" -> " is"), turns symbols and apostrophes into spaces,
   writes spelled-out numbers as digits ("twenty five" -> "25") and maps spellings
   ("colour" -> "color");
3. digits 0-20 and the tens back to words ("5" -> "five"; "25" stays), then a short contraction map;
4. drop bracketed spans ``[..] (..) {..} <..>``;
5. jiwer: collapse spaces, expand common English contractions, remove Kaldi non-words
   (``<unk>``, ``[noise]``), remove punctuation;
6. drop the hesitations uh / umm / um / er / ah;
7. an empty result becomes "empty" (so an empty reference still has one word).

Corpus WER = sum(S + D + I) / sum(S + D + H) over all utterances (jiwer on the lists), not the
mean of per-utterance WERs.
"""
from __future__ import annotations

import re
from functools import lru_cache

from emoreason.text.spelling import spelling_map

_NUMBERS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
    "7": "seven", "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve",
    "13": "thirteen", "14": "fourteen", "15": "fifteen", "16": "sixteen", "17": "seventeen",
    "18": "eighteen", "19": "nineteen", "20": "twenty", "30": "thirty", "40": "forty",
    "50": "fifty", "60": "sixty", "70": "seventy", "80": "eighty", "90": "ninety",
}
_NUMBER = re.compile(r"\b(" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + r")\b")
# AudioBench's step-3 map; after Whisper's normaliser it rarely fires (apostrophes are gone), but
# it matters when the Whisper step is off and keeps the steps the same as theirs.
_CONTRACTIONS = {
    "i'm": "i am", "you're": "you are", "he's": "he is", "she's": "she is", "it's": "it is",
    "we're": "we are", "they're": "they are", "i've": "i have", "you've": "you have", "we've": "we have",
    "they've": "they have", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
    "weren't": "were not", "hasn't": "has not", "haven't": "have not", "hadn't": "had not",
    "doesn't": "does not", "don't": "do not", "didn't": "did not", "that's": "that is",
}
_CONTRACTION = re.compile(r"\b(" + "|".join(re.escape(c) for c in _CONTRACTIONS) + r")\b")
# Any bracket pair with no nested bracket or newline inside. (AudioBench's pattern also excludes
# the letter "n" from the span by an escaping slip; Whisper's step has removed brackets by then.)
_BRACKETS = re.compile(r"[\[({<][^()\[\]\n]*[\])}>]")
_HESITATIONS = re.compile(r"\b(uh|umm|um|er|ah)\b")


@lru_cache(maxsize=1)
def _whisper_normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(spelling_map())


@lru_cache(maxsize=1)
def _jiwer_steps():
    import jiwer

    return jiwer.Compose([jiwer.RemoveMultipleSpaces(), jiwer.ExpandCommonEnglishContractions(),
                          jiwer.RemoveKaldiNonWords(), jiwer.RemovePunctuation()])


def normalize(text: str, whisper: bool = True) -> str:
    """AudioBench-style normalisation of one transcript (steps in the module docstring);
    ``whisper=False`` skips step 2."""
    text = (text or "").lower()
    if whisper:
        text = _whisper_normalizer()(text)
    text = _NUMBER.sub(lambda m: _NUMBERS[m.group(1)], text)
    text = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m.group(1)], text)
    text = _BRACKETS.sub("", text)
    text = _jiwer_steps()(text)
    text = _HESITATIONS.sub("", text)
    return " ".join(text.split()) or "empty"


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


def utterance_counts(references: list[str], hypotheses: list[str]) -> tuple[list[int], list[int]]:
    """Per utterance (errors S + D + I, reference words S + D + H) after normalisation: the pieces
    a bootstrap of the corpus WER resamples."""
    import jiwer

    errors, words = [], []
    for ref, hyp in zip(references, hypotheses, strict=True):
        out = jiwer.process_words(normalize(ref), normalize(hyp))
        errors.append(out.substitutions + out.deletions + out.insertions)
        words.append(out.substitutions + out.deletions + out.hits)
    return errors, words


def utterance_wer(reference: str, hypothesis: str) -> float:
    """WER of one utterance after normalisation (for per-row details)."""
    return corpus_wer([reference], [hypothesis])["wer"]
