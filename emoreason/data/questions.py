"""Instruction pools for every task, and the one deterministic way to pick from them.

Paper section 3.1: question-answer training rows take their question from a pool probing the
speaker's emotional state / tone; sentiment rows use broader questions about the speaker's overall
positive, negative or neutral leaning. ASR and SQA rows get their own pools so the speech-centric
tasks are phrased with some variety too.

Every consumer (importers, synthetic corpus, teacher, evaluation) picks instructions through
:func:`instruction_for` so that the same row gets the same instruction everywhere, in every process
and on every machine: the choice depends only on (seed, task, row id), hashed with SHA-256
(Python's ``hash()`` is salted per process and would not be stable).

Changing a pool changes which instruction a row gets; bump :data:`POOLS_VERSION` when you do, so
manifests built before and after can be told apart (importers record it in ``meta``).
"""
from __future__ import annotations

import hashlib
import random
from typing import Union

from emoreason.errors import UserError

POOLS_VERSION = 1
"""Bumped whenever a pool's content or order changes (instruction choice depends on both)."""

EMOTION_POOL: list[str] = [
    # The paper's three examples first (section 3.1), then variations on the same probe.
    "How would you interpret the speaker's emotional state from their speech?",
    "What emotion do you think the speaker is expressing?",
    "How would you describe the tone of the speaker's voice?",
    "What emotion is conveyed in the speaker's voice?",
    "Listen to the audio. How does the speaker feel?",
    "Which emotion best describes the speaker in this recording?",
    "What is the emotional state of the speaker?",
    "Based on how it is said, what emotion is the speaker feeling?",
    "Can you identify the emotion behind the speaker's words?",
    "What mood does the speaker's voice reveal?",
    "How does the speaker sound emotionally in this clip?",
    "Considering both the words and the voice, what emotion is the speaker expressing?",
    "What feeling comes through in the way the speaker talks?",
    "Describe the speaker's emotion and what in the speech suggests it.",
    "Is the speaker angry, happy, sad, or something else? Explain.",
    "What emotion would you say the speaker is experiencing right now?",
]

SENTIMENT_POOL: list[str] = [
    # Broader questions about the overall leaning (paper section 3.1).
    "Is the speaker's overall attitude positive, negative, or neutral?",
    "What is the overall sentiment of the speaker in this recording?",
    "Does the speaker come across as positive, negative, or neutral?",
    "How would you characterise the speaker's general outlook in this clip: positive, negative, or neutral?",
    "What sentiment does the speaker express toward what they are talking about?",
    "Overall, is what the speaker says and how they say it positive, negative, or neutral?",
    "Judging from the speech, is the speaker's stance favourable, unfavourable, or neutral?",
    "What is the general tone of this utterance in terms of sentiment?",
    "Would you describe the speaker's attitude as positive, negative, or neutral? Why?",
    "Listen to the speaker. Is the sentiment of the utterance positive, negative, or neutral?",
]

ASR_POOL: list[str] = [
    "Please transcribe the speech.",
    "Transcribe the audio into text.",
    "What does the speaker say? Write it down word for word.",
    "Convert this speech to text.",
    "Write out exactly what is said in the recording.",
    "Provide a verbatim transcript of the audio.",
    "Please write down what you hear.",
    "Transcribe the spoken words in this clip.",
]

SQA_POOL: list[str] = [
    # SQA rows carry the question about the content; the template frames it. ``{question}`` is
    # required: sample_instruction(..., question=...) fills it.
    "{question}",
    "Listen to the audio and answer the question: {question}",
    "Answer based on what is said in the recording. {question}",
    "{question} Answer using the information in the speech.",
    "Question about the audio: {question}",
    "Based on the speech, {question_lc}",
]

POOLS: dict[str, list[str]] = {
    "emotion": EMOTION_POOL,
    "sentiment": SENTIMENT_POOL,
    "asr": ASR_POOL,
    "sqa": SQA_POOL,
}
"""task -> instruction templates. Templates may use ``{question}`` / ``{question_lc}`` (SQA)."""

SeedKey = Union[random.Random, int, str]


def _index(key: int | str, n: int) -> int:
    """Stable index in [0, n) from an int or string key (SHA-256, same on every machine)."""
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def fill_instruction(template: str, task: str, question: str | None) -> str:
    """``template`` with ``{question}`` / ``{question_lc}`` filled (unchanged when it has neither);
    UserError when it needs a question and ``question`` is empty."""
    if "{question" not in template:
        return template
    if not question or not question.strip():
        raise UserError(f"task '{task}' instruction needs a question (got none)")
    q = question.strip()
    # "Based on the speech, what ..." reads better with the question's first letter lowercased,
    # unless the question starts with an acronym / proper "I".
    lc = q[0].lower() + q[1:] if len(q) > 1 and not q[1].isupper() and not q.startswith("I ") else q
    return template.format(question=q, question_lc=lc)


def sample_instruction(task: str, rng: SeedKey, question: str | None = None) -> str:
    """One instruction for ``task`` from its pool.

    ``rng`` is a ``random.Random`` (draws one choice from it, advancing its state) or a seed key
    (int or str: the same key always gives the same instruction, independent of process and
    machine). ``question`` fills ``{question}`` templates (task ``sqa``; required there).
    Raises UserError for an unknown task.
    """
    pool = POOLS.get(task)
    if pool is None:
        raise UserError(f"no instruction pool for task {task!r} (known: {sorted(POOLS)})")
    if isinstance(rng, random.Random):
        template = pool[rng.randrange(len(pool))]
    elif isinstance(rng, (int, str)) and not isinstance(rng, bool):
        template = pool[_index(f"{task}|{rng}", len(pool))]
    else:
        raise TypeError(f"rng must be random.Random, int or str, got {type(rng).__name__}")
    return fill_instruction(template, task, question)


def default_instruction(task: str, question: str | None = None) -> str:
    """The first template of ``task``'s pool, filled: what inference asks when the caller gives no
    prompt (the paper's own example for emotion; for SQA the bare question, as the pool's first
    template renders it). UserError for an unknown task or an SQA call without a question."""
    pool = POOLS.get(task)
    if pool is None:
        raise UserError(f"no instruction pool for task {task!r} (known: {sorted(POOLS)})")
    return fill_instruction(pool[0], task, question)


def instruction_for(row_id: str, task: str, seed: int = 0, question: str | None = None) -> str:
    """The instruction row ``row_id`` gets for ``task`` under ``seed``: stable across consumers.

    ``instruction_for("iemocap/Ses01F_impro01_F000", "emotion", 0)`` returns the same string in the
    importer, the teacher and the evaluator. Different seeds give (mostly) different choices.
    """
    return sample_instruction(task, f"{seed}|{row_id}", question=question)


# Label-only targets: the paper's baseline answers and the default target an importer writes when
# the corpus has no answer sentence. The sentence itself lives in labels.LABEL_SENTENCES (shared with
# the teacher and the inference engine's forced choice); this wrapper checks the task and label.
def label_target(task: str, label: str) -> str:
    """Label-only answer: ``label_target("emotion", "angry") == "The speaker sounds angry."``."""
    from emoreason.labels import LABEL_SENTENCES, label_sentence

    if task not in LABEL_SENTENCES:
        raise UserError(f"no label-only target for task {task!r} (known: {sorted(LABEL_SENTENCES)})")
    if not label:
        raise UserError(f"task '{task}' label-only target needs a label")
    return label_sentence(task, label)
