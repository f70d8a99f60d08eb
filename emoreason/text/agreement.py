"""Keep an explanation to the sentences that agree with its label (``explain="forced"`` answers).

With ``explain="forced"`` the answer starts with the forced choice's sentence ("The speaker sounds
sad."), yet a small or briefly trained model can go on to contradict it ("... The speaker's
emotional state is not sad.") or loop on one sentence: measured on 40 held-out clips with a
22-step detailed model, a third of the forced answers read as another label (docs/evaluation.md,
"Quotes that were said", the 40-clip forced run). :func:`agreeing_explanation` keeps the sentences
up to the first one that repeats an earlier sentence, or loops within itself (the same words
over and over with no end of sentence: ``For example, "The city,"], "The city,"], ...``), or that
commits to another label on its own, or after which the text as a whole, read as the evaluation
reads answers (:mod:`emoreason.text.label_extraction`), no longer agrees. The printed answer then never argues
against the label it is printed with. ``explain="free"`` (the paper's protocol) is never trimmed.
"""
from __future__ import annotations

import re
from typing import Callable

_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")
"""A sentence: text up to and including its end punctuation (or a line break, or the end)."""


def sentences(text: str) -> list[str]:
    """``text`` cut after each run of ``.``, ``!``, ``?`` and at line breaks; the pieces, joined,
    give ``text`` back (whitespace included), empty pieces dropped."""
    return [s for s in _SENTENCE.findall(text) if s]


def _key(sentence: str) -> str:
    return " ".join(re.findall(r"\w+", sentence.lower()))


LOOP_MAX_WORDS = 12
"""The longest run of words :func:`loops` looks for repeated back to back."""
LOOP_COPIES = 3
"""Back-to-back copies of a run of 2+ words that make a loop (a single word needs one more:
"very, very, very" is emphasis, not yet a loop)."""


def loops(sentence: str) -> bool:
    """Whether ``sentence`` holds a run of 1-:data:`LOOP_MAX_WORDS` words repeated back to back
    :data:`LOOP_COPIES` times (a single word: one copy more), words compared in lower case without
    punctuation (``"The city,"],`` and ``"The city,"),`` are the same two words). A greedy small
    model that falls into such a loop writes it until its token budget ends."""
    words = _key(sentence).split()
    for start in range(len(words)):
        for n in range(1, LOOP_MAX_WORDS + 1):
            copies = LOOP_COPIES + (n == 1)
            if start + copies * n > len(words):
                break
            run = words[start:start + n]
            if all(words[start + k * n:start + (k + 1) * n] == run for k in range(1, copies)):
                return True
    return False


def agreeing_explanation(text: str, agrees: Callable[[str], bool | None]) -> tuple[str, int]:
    """(``text``'s leading sentences up to the first that breaks agreement, the number of sentences
    dropped). ``agrees(t)`` is the label check of a text (``consistency``: True, False, or None for
    "commits to no label"). The cut falls before the first sentence that repeats an earlier one,
    that ``agrees`` reads as False on its own, or after which the kept text is no longer read as
    True, or that :func:`loops`. The first sentence (the forced label's) is always kept."""
    parts = sentences(text)
    if not parts:
        return text, 0
    kept, seen = [parts[0]], {_key(parts[0])}
    for part in parts[1:]:
        key = _key(part)
        if key and (key in seen or loops(part)):
            break
        if key and (agrees(part) is False or agrees("".join(kept + [part])) is not True):
            break
        kept.append(part)
        if key:
            seen.add(key)
    return "".join(kept).rstrip(), len(parts) - len(kept)
