"""Label extraction from free text: what emotion (or sentiment) does an answer commit to?

Used by the offline judge (prediction vs reference), by the metrics (confusion matrices over free
text) and to read AudioBench-style reference sentences ("The speaker's tone sounds anger.").

The extractor is a small rule system over tokens, in one left-to-right pass:

* surface forms come from :data:`emoreason.labels.SYNONYMS` plus free-text inflections below
  (angrier, happier, saddened, ...); corpus codes ("ang", "hap", "neu") and words that are mostly
  not emotions in running text ("content", "other", "down") are only read in bare answers;
* quoted spans are removed first: words the speaker said are evidence, not the model's verdict;
* negation ("not angry", "isn't happy or excited", "no sign of anger", "rather than sad") with a
  scope that stops at clause boundaries (punctuation, "but", "however", ...);
* minor mentions ("hints of sadness", "slightly annoyed", "sad undertones", concessive clauses
  "although the words sound happy, ...") are kept apart from the verdict;
* the verdict ("primary") is every asserted, non-minor label in the first sentence that asserts
  one ("frustrated and angry" -> both); later sentences only add secondary labels;
* an answer that lists three or more labels as alternatives, or asserts none, is undecided.

Hedges ("might be", "seems", "probably") do not weaken a single verdict: an LLM judge accepts
"the speaker might be sad" for a sad reference, and so do we.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from emoreason.labels import SENTIMENT, SYNONYMS, sentiment_of

# Corpus codes and words that are rarely emotions in running prose: used only in bare answers
# ("Neutral.", "hap") of at most a few words.
_BARE_ONLY = {"ang", "hap", "neu", "dis", "fea", "sur", "fru", "exc", "oth", "xxx", "pos", "neg",
              "other", "content", "down", "unknown", "<unk>"}
# Extra free-text inflections that SYNONYMS (corpus-oriented) does not carry.
_EXTRA: dict[str, str] = {
    "angrier": "angry", "angriest": "angry", "infuriated": "angry", "outraged": "angry",
    "outrage": "angry", "livid": "angry", "irritation": "angry", "irritable": "angry",
    "agitated": "angry", "agitation": "angry", "resentful": "angry", "resentment": "angry",
    "indignant": "angry", "indignation": "angry", "aggressive": "angry", "aggression": "angry",
    "hostility": "angry", "furiously": "angry",
    "happier": "happy", "happiest": "happy", "happily": "happy", "joyfully": "happy",
    "cheerfully": "happy", "cheerfulness": "happy", "elated": "happy", "elation": "happy",
    "gleeful": "happy", "glee": "happy", "jubilant": "happy", "contented": "happy",
    "contentment": "happy", "delight": "happy", "pleasure": "happy", "satisfied": "happy",
    "satisfaction": "happy", "merry": "happy", "lighthearted": "happy", "playful": "happy",
    "sadder": "sad", "saddest": "sad", "sadly": "sad", "saddened": "sad", "sorrowfully": "sad",
    "melancholic": "sad", "heartbroken": "sad", "despair": "sad", "despondent": "sad",
    "dejected": "sad", "mournful": "sad", "grieving": "sad", "unhappiness": "sad",
    "hopeless": "sad", "hurt": "sad", "somber": "sad", "sombre": "sad", "crying": "sad",
    "tearful": "sad", "dissatisfied": "frustrated", "dissatisfaction": "frustrated", "regretful": "sad", "regret": "sad", "lonely": "sad", "loneliness": "sad",
    "neutrally": "neutral", "indifferent": "neutral", "indifference": "neutral",
    "unemotional": "neutral", "emotionless": "neutral", "impassive": "neutral",
    "composed": "neutral", "calmly": "neutral", "calmness": "neutral",
    "disgustedly": "disgusted", "repulsion": "disgusted", "repelled": "disgusted",
    "revolted": "disgusted", "grossed": "disgusted", "contempt": "disgusted", "disdain": "disgusted",
    "fearfully": "fearful", "fright": "fearful", "scary": "fearful", "panic": "fearful",
    "panicked": "fearful", "panicky": "fearful", "terror": "fearful", "dread": "fearful",
    "apprehensive": "fearful", "apprehension": "fearful", "nervousness": "fearful",
    "worry": "fearful", "anxiously": "fearful", "uneasy": "fearful", "alarmed": "fearful",
    "surprising": "surprised", "shock": "surprised", "astonishment": "surprised", "amazement": "surprised",
    "disbelief": "surprised", "stunned": "surprised", "astounded": "surprised",
    "frustrating": "frustrated", "exasperation": "frustrated", "exasperating": "frustrated",
    "frustratedly": "frustrated",
    "exciting": "excited", "excitedly": "excited", "enthusiasm": "excited",
    "enthusiastically": "excited", "thrill": "excited", "eagerness": "excited",
    "exhilarated": "excited", "animated": "excited", "energetic": "excited", "elevated": "excited",
    "positively": "positive", "positivity": "positive", "optimistic": "positive",
    "favorable": "positive", "favourable": "positive",
    "negatively": "negative", "negativity": "negative", "pessimistic": "negative",
    "unfavorable": "negative", "unfavourable": "negative",
}
# Multi-word surface forms (checked before single tokens).
_PHRASES: dict[tuple[str, ...], str] = {
    ("no", "strong", "emotion"): "neutral", ("no", "strong", "emotions"): "neutral",
    ("no", "particular", "emotion"): "neutral", ("no", "emotion"): "neutral",
    ("matter", "of", "fact"): "neutral", ("matter-of-fact",): "neutral", ("flat", "tone"): "neutral",
    ("monotone",): "neutral", ("even", "tone"): "neutral", ("neither", "positive", "nor", "negative"): "neutral",
    ("fed", "up"): "frustrated", ("pissed", "off"): "angry", ("ticked", "off"): "angry",
    ("grossed", "out"): "disgusted", ("freaked", "out"): "fearful", ("taken", "aback"): "surprised",
    ("caught", "off", "guard"): "surprised", ("in", "awe"): "surprised",
    ("is", "flat"): "neutral", ("sounds", "flat"): "neutral", ("normal", "tone"): "neutral",
    ("normal", "voice"): "neutral", ("ordinary", "tone"): "neutral", ("regular", "tone"): "neutral",
}
# "doesn't express any particular emotion" asserts neutrality: the negated word is a non-emotion.
_NO_EMOTION = re.compile(r"(\bnot|n't|\bno|\bwithout|\blacks?|\blacking)\b(\s+\w+){0,4}?\s+(any\s+)?"
                         r"(strong|particular|specific|real|much|clear|obvious|discernible)\s+(emotion|emotions|feeling|feelings)\b")
# Behaviour words that point to a label but do not name it ("laughing", "about to cry"): used only
# when the answer names no label at all, so "excited, laughing as they speak" stays excited.
_WEAK: dict[str, str] = {
    "laughing": "happy", "laughs": "happy", "laughter": "happy", "giggling": "happy", "smiling": "happy",
    "cry": "sad", "cries": "sad", "tears": "sad", "sobbing": "sad", "sighing": "sad", "sobs": "sad",
    "yelling": "angry", "shouting": "angry", "screaming": "angry", "yells": "angry", "shouts": "angry",
    "trembling": "fearful", "gasps": "surprised", "gasping": "surprised",
}
_SURFACE: dict[str, str] = {k: v for k, v in {**SYNONYMS, **_EXTRA, **_WEAK}.items() if " " not in k}
# Free-text words excluded from mapping (too often not an emotion word in prose).
_PROSE_SKIP = _BARE_ONLY | {"surprisingly", "content"}

_NEGATORS = {"not", "no", "never", "without", "neither", "nor", "nothing", "none", "lacks", "lack",
             "lacking", "absence", "free", "instead", "rather", "hardly", "barely", "isn't", "aren't",
             "wasn't", "weren't", "doesn't", "don't", "didn't", "can't", "cannot", "won't", "nobody",
             "shouldn't", "wouldn't", "couldn't", "haven't", "hasn't", "unlikely", "less", "ruled"}
# Words that end a negation's (or a hedge's) scope.
_CLAUSE_BREAKS = {",", ";", ":", "but", "however", "although", "though", "yet", "whereas", "while",
                  "because", "since", "so", "which", "who", "that", "if", "when"}
_CONCESSIVE = {"although", "though", "despite", "whereas", "while", "even"}
_MINOR_BEFORE = {"hint", "hints", "slight", "slightly", "touch", "tinge", "trace", "traces", "subtle",
                 "subtly", "mild", "mildly", "underlying", "undertone", "undertones", "bit", "little",
                 "somewhat", "faint", "faintly", "glimmer", "shade", "twinge", "note", "notes", "element",
                 "elements", "hidden", "occasional", "minor", "possible", "secondary", "later", "also", "some"}
_MINOR_AFTER = {"undertone", "undertones", "tinge", "tinges", "hint", "hints", "overtones", "edge"}
_REFUSAL = re.compile(
    r"\b(cannot|can't|can not|unable to|not possible to|impossible to|hard to|difficult to|not sure|unclear|"
    r"no audio|as an ai|i'm sorry|i am sorry)\b")
# Words that show the text talks *about* the speech (not a transcript of it).
_META = re.compile(
    r"\b(speaker|speaker's|tone|emotion|emotions|emotional|sentiment|mood|voice|sounds?|sounding|feel|"
    r"feels|feeling|express|expresses|expressing|seems?|appears?|conveys?|state|attitude|indicat\w*|"
    r"suggest\w*|likely|perceive\w*|detect\w*|label|classif\w*|answer|overall|speech|person|talking|"
    r"speaking|speaks|says|said|i'd say|i think|i believe|i guess|i would say)\b")
_PERSONAL = re.compile(r"\b(i|i'm|me|my|you|your|we|we're|our|us)\b")
_QUOTES = re.compile(r'"[^"\n]*"|“[^”\n]*”|‘[^’\n]*’|«[^»\n]*»|(?<![a-z])\'[^\'\n]{2,}?\'(?![a-z])', re.I)
_TOKEN = re.compile(r"[a-z<>]+(?:[-'][a-z]+)*|[,;:]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NEG_WINDOW = 6
_MINOR_WINDOW = 3


@dataclass
class Extraction:
    """What a text commits to. Labels are canonical (emotion words, or sentiment words for sentiment)."""

    primary: list[str] = field(default_factory=list)
    """The verdict: asserted labels of the first sentence that asserts any, in order."""
    secondary: list[str] = field(default_factory=list)
    """Asserted later or as a minor mention (hints of, slightly, concessive clause)."""
    negated: list[str] = field(default_factory=list)
    undecided: bool = False
    """Three or more alternatives, or a refusal without any label."""

    @property
    def label(self) -> str | None:
        """The single best label (first of ``primary``), None when nothing is asserted."""
        return self.primary[0] if self.primary and not self.undecided else None

    def to_dict(self) -> dict:
        return {"primary": self.primary, "secondary": self.secondary, "negated": self.negated,
                "undecided": self.undecided}


def strip_quotes(text: str) -> str:
    """Replace quoted spans (straight, curly, single) by a neutral marker: quotes are evidence."""
    return _QUOTES.sub(" QUOTED ", text)


def _lookup(tokens: list[str], i: int, bare: bool) -> tuple[str | None, int]:
    """Canonical label starting at token ``i`` and the number of tokens it spans (0 if none)."""
    for phrase, canon in _PHRASES.items():
        n = len(phrase)
        if tuple(tokens[i:i + n]) == phrase:
            return canon, n
    tok = tokens[i]
    if tok in _PROSE_SKIP and not bare:
        # "feeling down", "quite content" are emotions; "the content of", "each other" are not.
        prev = tokens[i - 1] if i else ""
        if tok in {"down", "content"} and prev in {"feeling", "feels", "feel", "sounds", "seems", "quite", "very", "bit", "is", "was", "sound", "and", "or", "looks", "getting", "gets", "got", "really", "so"}:
            return _SURFACE.get(tok), 1
        return None, 0
    canon = _SURFACE.get(tok)
    if canon is None and tok.endswith("ness"):
        canon = _SURFACE.get(tok[:-4])  # nervousness, gloominess-like forms
    return canon, (1 if canon else 0)


def _scan_sentence(tokens: list[str], bare: bool) -> list[tuple[str, str]]:
    """[(label, kind)] in order, kind in {"asserted", "minor", "negated", "weak"}."""
    out: list[tuple[str, str]] = []
    concessive = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _CONCESSIVE:
            concessive = True
        elif tok in {",", ";", ":"}:
            concessive = False
        canon, n = _lookup(tokens, i, bare)
        if not canon:
            i += 1
            continue
        phrase_negates = tokens[i] in {"no", "neither"}  # "no strong emotion" is itself the label
        kind = "asserted"
        if not phrase_negates:
            for j in range(i - 1, max(-1, i - 1 - _NEG_WINDOW), -1):
                t = tokens[j]
                nxt = tokens[j + 1] if j + 1 < len(tokens) else ""
                if t == "rather" and nxt != "than" or t == "instead" and nxt != "of":
                    continue  # "rather calm" is an assertion; "rather than calm" is not
                if t in _NEGATORS or t.endswith("n't"):
                    # "not only" and "no doubt" do not negate what follows.
                    if nxt in {"only", "doubt", "question", "wonder", "mistaking"}:
                        break
                    kind = "negated"
                    break
                if t in _CLAUSE_BREAKS:
                    break
                if t == "and" and j < i - 1 and tokens[j + 1] not in _SURFACE:
                    break  # "and" followed by a new verb phrase ends the scope
        if kind == "asserted" and n == 1 and tokens[i] in _WEAK:
            kind = "weak"
        if kind == "asserted":
            before = set(tokens[max(0, i - _MINOR_WINDOW):i])
            after = tokens[i + n] if i + n < len(tokens) else ""
            if concessive or before & _MINOR_BEFORE or after in _MINOR_AFTER:
                kind = "minor"
        out.append((canon, kind))
        i += n
    return out


def _to_task(labels: list[str], task: str) -> list[str]:
    """Map emotion labels to the task's label space (sentiment: polarity; emotion: drop polarity)."""
    if task == "sentiment":
        explicit = [l for l in labels if l in SENTIMENT]
        if explicit:
            return explicit
        return [sentiment_of(l) for l in labels if l not in ("surprised", "other", "unknown")]
    return [l for l in labels if l not in ("positive", "negative")]


def _opposed(labels: list[str]) -> bool:
    """A positive and a negative label among ``labels`` ("neither happy nor sad")."""
    pol = {sentiment_of(l) for l in labels}
    return {"positive", "negative"} <= pol


def _dedupe(xs: list[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def extract_labels(text: str, task: str = "emotion") -> Extraction:
    """Extract the labels a free-text answer commits to.

    ``task`` is ``emotion`` (canonical emotion labels) or ``sentiment`` (positive / negative /
    neutral; emotion words map to their polarity when no polarity word is asserted).
    """
    low = strip_quotes(text.lower().replace("’", "'"))
    words = _TOKEN.findall(low)
    bare = len([w for w in words if w not in {",", ";", ":"}]) <= 4
    # A long answer with no word about the speech is a transcript echo (SALMONN-style): no verdict.
    if not bare and not _META.search(low) and _PERSONAL.search(low):
        return Extraction(undecided=True)
    primary: list[str] = []
    secondary: list[str] = []
    negated: list[str] = []
    first_minor: list[str] = []
    first_weak: list[str] = []
    for sentence in _SENTENCE.split(low):
        found = _scan_sentence(_TOKEN.findall(sentence), bare)
        asserted = _to_task([l for l, k in found if k == "asserted"], task)
        minor = _to_task([l for l, k in found if k == "minor"], task)
        negated += _to_task([l for l, k in found if k == "negated"], task)
        if not first_minor:
            first_minor = minor
        if not first_weak:
            first_weak = _to_task([l for l, k in found if k == "weak"], task)
        if not primary and asserted:
            primary = _dedupe(asserted)
            secondary += minor
        else:
            secondary += asserted + minor
    if not primary and (_NO_EMOTION.search(low) or ("neither" in low and _opposed(negated))):
        primary = ["neutral"]  # "no particular emotion", "neither happy nor sad"
    if not primary and first_minor:
        # "The speaker sounds a bit sad." : a softened verdict is still the verdict.
        primary = _dedupe(first_minor)
    if not primary and first_weak:
        primary = _dedupe(first_weak)  # "the speaker is laughing" -> happy, when nothing is named
    primary = _dedupe(primary)
    undecided = len(primary) >= 3 or (not primary and bool(_REFUSAL.search(low)))
    secondary = [l for l in _dedupe(secondary) if l not in primary]
    return Extraction(primary, secondary, _dedupe(negated), undecided)


def reference_label(reference: str, task: str = "emotion") -> str | None:
    """The gold label of a reference: a bare label ("neu", "Joy") or a sentence ("The speaker's
    tone sounds anger."). None when no label can be read."""
    got = extract_labels(reference, task)
    if got.primary:
        return got.primary[0]
    return None


def binary_match(prediction: str, reference_label_: str, task: str = "emotion") -> tuple[int, Extraction]:
    """AudioBench binary rubric, offline: 1 when the answer's verdict contains the reference label.

    A verdict of two labels ("frustrated and angry") covers either; three or more alternatives,
    a refusal, a negated or merely hinted reference label score 0.
    """
    got = extract_labels(prediction, task)
    ok = (not got.undecided) and reference_label_ in got.primary
    return int(ok), got
