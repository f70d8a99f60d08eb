"""Offline 0-5 rating of an open-ended spoken-QA answer against the reference answer.

A lexical stand-in for AudioBench's open-ended LLM rubric (``rubrics/open.txt``), for smoke tests
and runs without a judge LLM. It cannot see paraphrase ("bad weather" for "a snowstorm"), so report
SQA numbers from an LLM judge; docs/evaluation.md gives its agreement with hand ratings.

How a rating is made:

* refusals and "not mentioned" answers score 0 (unless the reference says the same);
* a yes / no reference against the opposite yes / no answer scores 0; a bare matching "yes" / "no"
  scores 4 (correct, less complete);
* a number in the reference with only other numbers in the answer ("twenty" for 12, 1933 for 1937,
  "three years" for "three months") scores 0;
* otherwise containment decides: the reference's words minus stop words and words of the
  question (an answer that echoes the question has not answered it) are the *key* words; the
  *core* words are the key words before the first trailing prepositional phrase ("a nurse | at the
  city hospital"), the part an answer must have. With ``core`` and ``key`` the fractions of those
  found in the answer: core >= 0.75 and key >= 0.75 -> 5; core >= 0.75 -> 4; either >= 0.5 -> 3;
  either > 0 -> 2; nothing -> 0.

Words are compared after lowercasing, Whisper's British -> American spelling map, number words ->
digits ("twelve" -> "12"), and a crude stem (suffix -s / -ing / -ed / -ly and a final -e stripped,
first 6 letters) so "migrate" meets "migration" and "butterfly" meets "butterflies".
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from emoreason.text.spelling import spelling_map

_DOLLARS = re.compile(r"\$(\d[\d,.]*)")
_TOKEN = re.compile(r"\d+(?:[:.,]\d+)*|[a-z]+")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                      "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000"})
# Function words plus words that name who is talking: every SQA answer is about "the speaker".
_STOP = set("""a an the of to in on at for from by with about as into over under than then and or but nor so
is are was were be been being am do does did done has have had having will would shall should can could may
might must it its it's this that these those there here he she they we you i me him her them us my your his
their our one ones some any all every each both more most very just also too not no yes because due
instead rather
what which who whom whose when where why how speaker speakers man woman person people they'd he's she's
say says said tell tells told mention mentions mentioned answer audio clip recording
don doesn didn isn wasn aren weren won couldn shouldn wouldn re ve ll""".split())
_PREPOSITIONS = {"at", "in", "on", "for", "from", "by", "with", "during", "after", "before", "near", "to"}
_REFUSAL = re.compile(
    r"\b(cannot|can ?not|can't|unable to|not able to)\b.{0,40}\b(determine|tell|answer|identify|know|find|infer|say)"
    r"|\b(not|never|isn't|doesn't|does not|is not) (mentioned|stated|specified|provided|clear|given)"
    r"|\bdoes(n't| not) (mention|say|specify|state|provide)|\bno (information|mention|indication)"
    r"|\bi (don't|do not) know\b|\bi'?m (sorry|not sure)|\bnot enough information", re.I)
_POLAR = {"yes": "yes", "yeah": "yes", "yep": "yes", "correct": "yes", "no": "no", "nope": "no"}


@dataclass(frozen=True)
class SqaRating:
    """One offline SQA rating and how it was reached."""

    rating: int
    """0-5, the open-ended rubric's scale."""
    reason: str
    """``refusal``, ``yes-no``, ``number``, ``containment``."""
    core: float
    """Fraction of the reference's core words found in the answer."""
    key: float
    """Fraction of the reference's key words (content words not in the question) found."""
    f1: float
    """Content-word F1 of answer and reference (for reading, not for the rating)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _words(text: str) -> list[str]:
    """Lowercased tokens, American spelling, number words as digits ("6:45" stays one token)."""
    spelling = spelling_map()
    out = []
    text = _DOLLARS.sub(r"\1 dollars", text.lower().replace("\u2019", "'"))  # "$15" meets "fifteen dollars"
    for w in _TOKEN.findall(text):
        w = spelling.get(w, w)
        out.append(_NUMBER_WORDS.get(w, w.replace(",", "")))
    return out


def _stem(word: str) -> str:
    if word[0].isdigit():
        return word
    if word.endswith("ily") and len(word) > 5:  # "heavily" -> "heavy"
        word = word[:-3] + "y"
    for suffix in ("ing", "ies", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:  # "take" / "taking", "close" / "closed"
        word = word[:-1]
    # Six letters join "migrate" / "migration" but keep "grandmother" / "grandfather" apart.
    return word[:6]


def _content(words: list[str]) -> list[str]:
    # single letters are the leftovers of "speaker's", not content
    return [_stem(w) for w in words if w not in _STOP and (len(w) > 1 or w.isdigit())]


def _core(words: list[str]) -> list[str]:
    """Content words before the first preposition that follows a content word."""
    seen: list[str] = []
    for w in words:
        if w in _PREPOSITIONS and seen:
            break
        if w not in _STOP and (len(w) > 1 or w.isdigit()):
            seen.append(_stem(w))
    return seen


def _fraction(needed: list[str], have: set[str]) -> float:
    return sum(w in have for w in needed) / len(needed) if needed else 0.0


def _numbers(words: list[str]) -> dict[str, set[str]]:
    """Number -> the content words right after it (its unit): "three months" -> {"3": {"month"}}."""
    out: dict[str, set[str]] = {}
    for i, w in enumerate(words):
        if w[0].isdigit():
            nxt = words[i + 1] if i + 1 < len(words) else ""
            out.setdefault(w, set())
            if nxt.isalpha() and nxt not in _STOP:
                out[w].add(_stem(nxt))
    return out


def _numbers_conflict(reference: dict[str, set[str]], prediction: dict[str, set[str]]) -> bool:
    """The answer gives numbers but none of the reference's, or the same number of another unit."""
    if not reference or not prediction:
        return False
    shared = reference.keys() & prediction.keys()
    if not shared:
        return True
    return all(reference[n] and prediction[n] and not reference[n] & prediction[n] for n in shared)


def _f1(reference: list[str], prediction: list[str]) -> float:
    common = sum(min(reference.count(w), prediction.count(w)) for w in set(reference))
    if not common:
        return 0.0
    p, r = common / len(prediction), common / len(reference)
    return 2 * p * r / (p + r)


def rate_sqa(reference: str, prediction: str, question: str = "") -> SqaRating:
    """Rate ``prediction`` 0-5 against ``reference`` (``question`` removes echoed words)."""
    ref_w, pred_w = _words(reference), _words(prediction)
    ref_c, pred_c = _content(ref_w), _content(pred_w)
    f1 = round(_f1(ref_c, pred_c), 4)
    if _REFUSAL.search(prediction) and not _REFUSAL.search(reference):
        return SqaRating(0, "refusal", 0.0, 0.0, f1)
    asked = set(_content(_words(question)))
    have = set(pred_c)
    key = [w for w in ref_c if w not in asked] or ref_c
    core = [w for w in _core(ref_w) if w not in asked] or key
    k, c = _fraction(key, have), _fraction(core, have)
    ref_polar = _POLAR.get(ref_w[0]) if ref_w else None
    pred_polar = _POLAR.get(pred_w[0]) if pred_w else None
    if ref_polar and pred_polar:
        if ref_polar != pred_polar:
            return SqaRating(0, "yes-no", c, k, f1)
        if not pred_c or k < 0.75:  # the right yes / no, little of the rest
            return SqaRating(4 if not pred_c or k >= 0.5 else 3, "yes-no", c, k, f1)
    ref_nums, pred_nums = _numbers(ref_w), _numbers(pred_w)
    if _numbers_conflict(ref_nums, pred_nums):
        return SqaRating(0, "number", c, k, f1)
    if c >= 0.75 and k >= 0.75:
        rating = 5
    elif c >= 0.75:
        rating = 4
    elif max(c, k) >= 0.5:
        rating = 3
    elif max(c, k) > 0:
        rating = 2
    else:
        rating = 0
    return SqaRating(rating, "containment", round(c, 4), round(k, 4), f1)
