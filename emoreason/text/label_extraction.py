"""Label extraction from free text: what emotion (or sentiment) does an answer commit to?

Used by the offline judge (prediction vs reference), by the metrics (confusion matrices over free
text) and to read AudioBench-style reference sentences ("The speaker's tone sounds anger.").

The extractor is a small rule system over tokens, in one left-to-right pass:

* surface forms come from :data:`emoreason.labels.SYNONYMS` plus free-text inflections below
  (angrier, happier, saddened, ...); corpus codes ("ang", "hap", "neu") and words that are mostly
  not emotions in running text ("content", "other", "down") are only read in bare answers;
* quoted spans are removed first: words the speaker said are evidence, not the model's verdict;
* negation ("not angry", "isn't happy or excited", "no sign of anger", "rather than sad") with a
  scope that stops at clause boundaries (punctuation, "but", "however", ...); a comparison's
  second term is not asserted either ("more angry than sad", "angrier than sad"; but "more than
  happy" asserts happy; the rare "less angry than sad" is read the same way, wrongly);
* a label named as a word ("saying the word happy", "the term angry") is a mention, not a verdict,
  and is skipped like a quote;
* minor mentions ("hints of sadness", "slightly annoyed", "sad undertones", concessive clauses
  "although the words sound happy, ...") are kept apart from the verdict;
* the verdict ("primary") is every asserted, non-minor label in the first sentence that asserts
  one ("frustrated and angry" -> both); later sentences only add secondary labels;
* an answer that lists three or more labels as alternatives, or asserts none, is undecided.

Hedges ("might be", "seems", "probably") do not weaken a single verdict: an LLM judge accepts
"the speaker might be sad" for a sad reference, and so do we.

How a verdict is rated against a gold label is a :class:`BinaryReading`: by default the reading of
AudioBench's Llama-3-70B binary judge (near-synonym classes, "no emotion detected" is neutral,
alternatives and doubts are wrong, implied sentiment); :meth:`BinaryReading.literal` is the exact
label match this module had before. The surface-form tables are in text/label_vocab.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from emoreason.labels import SENTIMENT, SYNONYMS, merged_label, sentiment_of
from emoreason.text.label_vocab import BARE_ONLY, EXTRA_FORMS, IMPLIED_SENTIMENT, PHRASES, VAGUE_WORDS, WEAK_CUES

# "doesn't express any particular emotion" asserts neutrality: the negated word is a non-emotion.
_NO_EMOTION = re.compile(r"(\bnot|n't|\bno|\bwithout|\blacks?|\blacking)\b(\s+\w+){0,4}?\s+(any\s+)?"
                         r"(strong|particular|specific|real|much|clear|obvious|discernible)\s+(emotion|emotions|feeling|feelings)\b")
_SURFACE: dict[str, str] = {k: v for k, v in {**SYNONYMS, **EXTRA_FORMS, **WEAK_CUES}.items() if " " not in k}
# Free-text words excluded from mapping (too often not an emotion word in prose).
_PROSE_SKIP = BARE_ONLY | {"surprisingly", "content"}

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
_MENTION_BEFORE = {"word", "words", "term", "terms", "label", "adjective"}
"""A label right after one of these is named, not asserted: "saying the word happy"."""
_MINOR_AFTER = {"undertone", "undertones", "tinge", "tinges", "hint", "hints", "overtones", "edge"}
# Broader "there is no emotion" forms (BinaryReading.no_emotion_is_neutral): an LLM judge reads "I
# cannot detect any emotion", "the speech is not emotional" as a neutral verdict. "Any"/"no" must
# quantify the emotion: "I cannot determine the emotion" is a refusal, not a verdict.
_EMO_NOUN = r"(emotions?|emotional\w*|feelings?|affect|sentiments?)"
_NO_EMOTION_BROAD = re.compile(
    r"\b(no|zero)\s+(\w+\s+){0,2}?" + _EMO_NOUN + r"\b"
    r"|(\bnot|n't|\bnever|\bwithout|\black(s|ing)?|\bdevoid\s+of|\bfree\s+of|\babsence\s+of|\bunable\s+to|"
    r"\bcannot|\bfail(s|ed)?\s+to)\b(\s+\w+){0,4}?\s+any\s+(\w+\s+)?" + _EMO_NOUN + r"\b"
    r"|(\bnot|n't)\s+(\w+\s+){0,2}?(emotional|emotive|emotionally)\b"
    r"|\b(without|devoid\s+of|lacks?|lacking|absence\s+of|free\s+of)\s+(\w+\s+)?" + _EMO_NOUN + r"\b"
    r"|\b(non-?emotional|emotionally\s+(flat|neutral|detached))\b")
# A refusal because the model got no audio is not a "no emotion" verdict.
_NO_AUDIO = re.compile(r"\b(no audio|without (the |an |any )?audio|(cannot|can't|unable to|not able to) "
                       r"(hear|listen|process|access|play)|as an ai|text-based|only (read )?text)\b")
# Doubt (BinaryReading.hedged_is_wrong): a label inside "unclear whether ...", "hard to tell if
# ..." is not committed to; the scope ends at a clause break ("hard to say, but it sounds sad").
_DOUBT = {"whether", "unclear", "unsure", "uncertain", "ambiguous", "undetermined", "debatable"}
_DOUBT_BEFORE_IF = {"tell", "say", "determine", "know", "sure", "certain", "clear", "judge", "decide",
                    "identify"}
_DOUBT_ENDS = {",", ";", ":", "but", "however", "although", "though", "yet", "whereas"}
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


@dataclass(frozen=True)
class BinaryReading:
    """How the binary rubric reads an answer against a gold label.

    Every field defaults to how AudioBench's Llama-3-70B binary judge reads its rubric ("correct:
    capturing or covering the meaning of the reference"); :meth:`literal` turns them all off.
    """

    merge_near_synonyms: bool = True
    """Frustrated counts as angry and excited as happy (:data:`emoreason.labels.NEAR_SYNONYMS`),
    unless the answer explicitly denies the gold label ("not angry, frustrated")."""
    no_emotion_is_neutral: bool = True
    """"No emotion can be detected", "the speech is not emotional" assert neutral (a refusal for
    lack of audio does not)."""
    hedged_is_wrong: bool = True
    """A verdict across two classes ("angry or sad", "a mix of happiness and sadness") or a label
    only inside a doubt ("unclear whether the speaker is sad") scores 0, even with the gold label."""
    implied_sentiment: bool = True
    """Sentiment task: words that imply a polarity (love, acceptance, complaint) count when the
    sentence names no polarity or emotion."""

    @classmethod
    def literal(cls) -> "BinaryReading":
        """Exact labels only: the offline judge's reading before the reference-compatible options."""
        return cls(merge_near_synonyms=False, no_emotion_is_neutral=False, hedged_is_wrong=False,
                   implied_sentiment=False)


AUDIOBENCH_READING = BinaryReading()
# Named readings for the command line (``eval score --offline-reading NAME``).
READINGS: dict[str, BinaryReading] = {"audiobench": AUDIOBENCH_READING, "literal": BinaryReading.literal()}


@dataclass
class Extraction:
    """What a text commits to. Labels are canonical (emotion words, or sentiment words for sentiment)."""

    primary: list[str] = field(default_factory=list)
    """The verdict: asserted labels of the first sentence that asserts any, in order."""
    secondary: list[str] = field(default_factory=list)
    """Asserted later or as a minor mention (hints of, slightly, concessive clause)."""
    negated: list[str] = field(default_factory=list)
    undecided: bool = False
    """Three or more alternatives, or a refusal (or doubt) without any committed label."""
    doubted: list[str] = field(default_factory=list)
    """Labels only inside a doubt ("unclear whether ..."); kept out of ``primary`` when the
    reading has ``hedged_is_wrong``."""

    @property
    def label(self) -> str | None:
        """The single best label (first of ``primary``), None when nothing is asserted."""
        return self.primary[0] if self.primary and not self.undecided else None

    def to_dict(self) -> dict:
        return {"primary": self.primary, "secondary": self.secondary, "negated": self.negated,
                "undecided": self.undecided, "doubted": self.doubted}


def strip_quotes(text: str) -> str:
    """Replace quoted spans (straight, curly, single) by a neutral marker: quotes are evidence."""
    return _QUOTES.sub(" QUOTED ", text)


def _lookup(tokens: list[str], i: int, bare: bool, surface: dict[str, str]) -> tuple[str | None, int]:
    """Canonical label starting at token ``i`` and the number of tokens it spans (0 if none)."""
    for phrase, canon in PHRASES.items():
        n = len(phrase)
        if tuple(tokens[i:i + n]) == phrase:
            return canon, n
    tok = tokens[i]
    if tok in _PROSE_SKIP and not bare:
        # "feeling down", "quite content" are emotions; "the content of", "each other" are not.
        prev = tokens[i - 1] if i else ""
        if tok in {"down", "content"} and prev in {"feeling", "feels", "feel", "sounds", "seems", "quite", "very", "bit", "is", "was", "sound", "and", "or", "looks", "getting", "gets", "got", "really", "so"}:
            return surface.get(tok), 1
        return None, 0
    canon = surface.get(tok)
    if canon is None and tok.endswith("ness"):
        canon = surface.get(tok[:-4])  # nervousness, gloominess-like forms
    return canon, (1 if canon else 0)


def _scan_sentence(tokens: list[str], bare: bool, reading: BinaryReading = AUDIOBENCH_READING,
                   task: str = "emotion") -> list[tuple[str, str]]:
    """[(label, kind)] in order, kind in {"asserted", "minor", "negated", "weak", "implied",
    "doubted", "vague"} (the last three only under the matching ``reading`` options)."""
    implied = task == "sentiment" and reading.implied_sentiment
    surface = {**IMPLIED_SENTIMENT, **_SURFACE} if implied else _SURFACE
    out: list[tuple[str, str]] = []
    concessive = doubt = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _CONCESSIVE:
            concessive = True
        elif tok in {",", ";", ":"}:
            concessive = False
        if tok in _DOUBT or tok == "if" and i and tokens[i - 1] in _DOUBT_BEFORE_IF:
            doubt = True
        elif tok in _DOUBT_ENDS:
            doubt = False
        canon, n = _lookup(tokens, i, bare, surface)
        if not canon:
            i += 1
            continue
        if i and tokens[i - 1] in _MENTION_BEFORE:
            i += n
            continue
        phrase_negates = tokens[i] in {"no", "neither"}  # "no strong emotion" is itself the label
        kind = "asserted"
        if not phrase_negates:
            for j in range(i - 1, max(-1, i - 1 - _NEG_WINDOW), -1):
                t = tokens[j]
                nxt = tokens[j + 1] if j + 1 < len(tokens) else ""
                if t == "rather" and nxt != "than" or t == "instead" and nxt != "of":
                    continue  # "rather calm" is an assertion; "rather than calm" is not
                if t == "than" and j and _lookup(tokens, j - 1, bare, surface)[0]:
                    kind = "negated"  # "more angry than sad", "angrier than sad": the verdict is the first
                    break
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
        if kind == "asserted" and n == 1 and tokens[i] in WEAK_CUES:
            kind = "weak"
        if kind == "asserted" and n == 1 and tokens[i] not in _SURFACE and implied:
            kind = "implied"  # a polarity the sentence only implies: below any named label
        if reading.hedged_is_wrong:
            if kind == "asserted" and doubt:
                kind = "doubted"
            elif kind == "asserted" and tokens[i] in VAGUE_WORDS:
                kind = "vague"
        if kind == "asserted":
            before = tokens[max(0, i - _MINOR_WINDOW):i]
            after = tokens[i + n] if i + n < len(tokens) else ""
            if concessive or set(before) & _MINOR_BEFORE or after in _MINOR_AFTER:
                # ... but "neutral or slightly sad" offers an alternative, not a nuance
                kind = "asserted" if reading.hedged_is_wrong and "or" in before else "minor"
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


def extract_labels(text: str, task: str = "emotion", reading: BinaryReading = AUDIOBENCH_READING) -> Extraction:
    """Extract the labels a free-text answer commits to.

    ``task`` is ``emotion`` (canonical emotion labels) or ``sentiment`` (positive / negative /
    neutral; emotion words map to their polarity when no polarity word is asserted). ``reading``
    switches the reference-compatible readings that change extraction (no emotion -> neutral,
    doubts, implied sentiment); see :class:`BinaryReading`.
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
    doubted: list[str] = []
    first_minor: list[str] = []
    first_weak: list[str] = []
    for sentence in _SENTENCE.split(low):
        found = _scan_sentence(_TOKEN.findall(sentence), bare, reading, task)

        def of_kind(kind: str) -> list[str]:
            return _to_task([l for l, k in found if k == kind], task)

        # vague ("upset") and implied ("expresses love") words only speak when the sentence names no
        # label itself
        asserted = of_kind("asserted") or of_kind("vague") or of_kind("implied")
        minor = of_kind("minor")
        negated += of_kind("negated")
        doubted += of_kind("doubted")
        if not first_minor:
            first_minor = minor
        if not first_weak:
            first_weak = of_kind("weak")
        if not primary and asserted:
            primary = _dedupe(asserted)
            secondary += minor
        else:
            secondary += asserted + minor
    if not primary and (_NO_EMOTION.search(low) or ("neither" in low and _opposed(negated))):
        primary = ["neutral"]  # "no particular emotion", "neither happy nor sad"
    if (not primary and reading.no_emotion_is_neutral and _NO_EMOTION_BROAD.search(low)
            and not _NO_AUDIO.search(low)):
        primary = ["neutral"]  # "I cannot detect any emotion", "the speech is not emotional"
    if not primary and first_minor:
        # "The speaker sounds a bit sad." : a softened verdict is still the verdict.
        primary = _dedupe(first_minor)
    if not primary and first_weak:
        primary = _dedupe(first_weak)  # "the speaker is laughing" -> happy, when nothing is named
    primary = _dedupe(primary)
    undecided = len(primary) >= 3 or (not primary and (bool(_REFUSAL.search(low)) or bool(doubted)))
    secondary = [l for l in _dedupe(secondary + doubted) if l not in primary]
    return Extraction(primary, secondary, _dedupe(negated), undecided, _dedupe(doubted))


def reference_label(reference: str, task: str = "emotion") -> str | None:
    """The gold label of a reference: a bare label ("neu", "Joy") or a sentence ("The speaker's
    tone sounds anger."). None when no label can be read."""
    got = extract_labels(reference, task)
    if got.primary:
        return got.primary[0]
    return None


def verdict_matches(got: Extraction, gold: str, reading: BinaryReading = AUDIOBENCH_READING) -> bool:
    """Whether an extracted verdict is rated correct (1) for the canonical ``gold`` label."""
    if got.undecided:
        return False
    cls = merged_label if reading.merge_near_synonyms else str
    classes = {cls(label) for label in got.primary}
    if reading.hedged_is_wrong and len(classes) > 1:
        return False  # "angry or sad", "a mix of happiness and sadness": the answer does not commit
    if reading.merge_near_synonyms and gold in got.negated:
        return False  # "not angry but frustrated" denies the gold label its near-synonym stands for
    return cls(gold) in classes


def binary_match(prediction: str, gold: str, task: str = "emotion",
                 reading: BinaryReading = AUDIOBENCH_READING) -> tuple[int, Extraction]:
    """AudioBench binary rubric, offline: 1 when the answer's verdict captures the gold label.

    Under the literal reading a verdict of two labels ("frustrated and angry") covers either; under
    the default reading the verdict must stay within one near-synonym class. Three or more
    alternatives, a refusal, a negated or merely hinted gold label score 0 in both.
    """
    got = extract_labels(prediction, task, reading)
    return int(verdict_matches(got, gold, reading)), got
