"""What the engine asks the model about one batch of 30 s windows, per task.

A :class:`TaskPlan` fixes, for one ``analyze`` call, the prompt, the candidate label sentences
(forced choice; none for asr / sqa), the generation budget and whether the model's own ASR task
also writes a transcript. :func:`run_windows` runs a plan on a batch of windows:

- the task's prompt rows (B of them) are scored against the candidates (emotion, sentiment) and
  continued greedily (explanation / transcript / answer);
- with an extra transcript, B more rows ask the ASR instruction about the same windows; they join
  the same ``generate`` call (2B rows), because greedy decoding is memory-bound: one batch of 2B
  rows costs far less than two batches of B;
- except with constrained quotes (emotion / sentiment with a transcript, the default): the
  explanation's quotes may only hold spans of the window's transcript, so the ASR rows are
  generated first and the explanations after them, under :class:`QuoteConstraint`.

Prompts match training: the default instruction of each task is the first of its training pool
(``emoreason.data.questions``); an SQA prompt is the question itself (the pool's first template is
``{question}``). A model trained "transcribe, then reason" (its processor's
``transcript_in_prompt``, ``data.transcript_in_prompt``) gets, as in training, the transcript in
its emotion / sentiment prompts: :func:`run_with_transcript_context` transcribes the windows first,
then renders the task's prompt with that transcript for the forced choice and the explanation.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from emoreason.errors import UserError

LABEL_TASKS = ("emotion", "sentiment")
"""Tasks answered by a forced choice over candidate labels (+ a generated explanation)."""
TEXT_TASKS = ("asr", "sqa")
"""Tasks whose answer is generated text only."""
TASKS = LABEL_TASKS + TEXT_TASKS
TRANSCRIPT_MODES = ("model", "none")
"""``model``: one extra ASR generation per window gives the clip's transcript; ``none``: skip it."""
QUOTE_MODES = ("constrained", "free")
"""``constrained``: quotes in explanations may only hold transcript spans
(``emoreason.inference.quote_constraint``); ``free``: generation is not touched."""
MAX_QUESTION_CHARS = 2000
CONTEXT_TRANSCRIPT_TOKENS = 64
"""Transcript budget of a transcript-in-context model asked for no generation (max_new_tokens 0):
its forced choice still needs the transcript its prompts were trained with."""


def default_prompt(task: str, question: str | None = None) -> str:
    """The instruction asked when the caller gives none: the first question of the task's training
    pool (the paper's own example for emotion), so inference sees a phrasing the model was trained
    on; for ``sqa`` the pool's first template filled with ``question`` (required)."""
    from emoreason.data.questions import default_instruction

    return default_instruction(task, question)


@dataclass(frozen=True)
class TaskPlan:
    """What to ask about every window of one ``analyze`` call.

    Build it with :func:`make_plan`, which checks the arguments."""

    task: str
    prompt: str
    """The task's instruction (sqa: with the question filled in)."""
    sentences: tuple[str, ...]
    """Candidate label sentences scored as the start of the response; empty for asr / sqa."""
    max_new_tokens: int
    """Budget of every generation (explanation, transcript, answer); 0: none at all."""
    transcript_prompt: str | None
    """The ASR instruction for the extra transcript rows; None: no extra rows."""
    question: str | None = None
    quotes: str = "free"
    """``constrained``: explanations are generated after the transcript, their quotes held to it."""


def make_plan(task: str, labels: Sequence[str], prompt: str | None, question: str | None,
              max_new_tokens: int, transcript: str, quotes: str | None = None) -> TaskPlan:
    """Check one call's arguments (UserError, one line) and fix what every window is asked.

    ``labels``: the task's candidate labels (empty for asr / sqa). ``prompt`` overrides the default
    instruction; for sqa it must contain ``{question}``. ``transcript``: one of
    :data:`TRANSCRIPT_MODES`; asr always produces its transcript (it is the task), so the setting
    only decides the extra ASR rows of the other tasks. ``quotes``: one of :data:`QUOTE_MODES`,
    or None: ``constrained`` when an emotion / sentiment explanation gets a transcript, else
    ``free``; ``constrained`` without a transcript is refused (nothing to hold quotes to). Tasks
    without an explanation (asr, sqa) and max_new_tokens 0 ignore it.
    """
    from emoreason.data.questions import fill_instruction
    from emoreason.labels import label_sentence
    from emoreason.text.reserved import check_no_reserved_tokens

    if task not in TASKS:
        raise UserError(f"unknown task {task!r} (expected one of {list(TASKS)})")
    if transcript not in TRANSCRIPT_MODES:
        raise UserError(f"unknown transcript setting {transcript!r} (expected one of {list(TRANSCRIPT_MODES)})")
    if quotes is not None and quotes not in QUOTE_MODES:
        raise UserError(f"unknown quotes setting {quotes!r} (expected one of {list(QUOTE_MODES)})")
    if quotes == "constrained" and transcript == "none" and task in LABEL_TASKS:
        raise UserError("quotes 'constrained' needs the model's transcript (transcript 'model'), not 'none'")
    if max_new_tokens < 0:
        raise UserError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    check_no_reserved_tokens(prompt, "the prompt")
    check_no_reserved_tokens(question, "the question")
    question = question.strip() if question else None
    if task == "sqa":
        if not question:
            raise UserError("task sqa needs a question (--question TEXT, or the 'question' form field)")
        if len(question) > MAX_QUESTION_CHARS:
            raise UserError(f"the question is {len(question)} characters long; at most {MAX_QUESTION_CHARS} are accepted")
        if prompt and "{question" not in prompt:
            raise UserError("an sqa prompt is a template and must contain {question}")
    elif question:
        raise UserError(f"a question is only asked with task sqa (got task {task!r})")
    if task in TEXT_TASKS and max_new_tokens == 0:
        raise UserError(f"task {task} generates text: max_new_tokens must be >= 1")
    text = fill_instruction(prompt, task, question) if prompt else default_prompt(task, question)
    extra = transcript == "model" and task != "asr" and max_new_tokens > 0
    constrained = extra and task in LABEL_TASKS and quotes in (None, "constrained")
    return TaskPlan(
        task=task, prompt=text, sentences=tuple(label_sentence(task, label) for label in labels),
        max_new_tokens=max_new_tokens, transcript_prompt=default_prompt("asr") if extra else None,
        question=question, quotes="constrained" if constrained else "free",
    )


RowTags = Sequence[tuple[int, str]]
"""What each row of one ``generate`` call is: (window index in the batch, ``"text"`` for the task's
own generation | ``"transcript"`` for the extra ASR generation)."""


class GenerationHooks(Protocol):
    """Extra ``generate`` arguments per call (a streamer, stopping criteria, sampling), for callers
    that serve many requests from one batch (``emoreason.inference.server``)."""

    def generate_kwargs(self, waves: Sequence[np.ndarray], rows: RowTags) -> dict[str, Any]:
        """Keyword arguments added to ``model.generate`` for one call; ``waves``: the batch's
        windows (each (T,)), ``rows``: what each of the call's rows is."""
        ...


_HOOKS: ContextVar[GenerationHooks | None] = ContextVar("emoreason_generation_hooks", default=None)


@contextmanager
def generation_hooks(hooks: GenerationHooks) -> Iterator[None]:
    """Apply ``hooks`` to every ``generate`` call that :func:`run_windows` makes in this thread
    (and context) until the block ends. A context variable rather than an engine argument: the
    engine's batching stays the same for every caller, and only the server needs the hooks."""
    token = _HOOKS.set(hooks)
    try:
        yield
    finally:
        _HOOKS.reset(token)


def _generate(model: Any, batch: dict[str, Any], waves: Sequence[np.ndarray], rows: RowTags,
              max_new_tokens: int, **kwargs: Any) -> list[str]:
    """``model.generate`` with the current :func:`generation_hooks`' extra arguments."""
    hooks = _HOOKS.get()
    if hooks is not None:
        kwargs.update(hooks.generate_kwargs(waves, rows))
    return model.generate(batch, max_new_tokens=max_new_tokens, **kwargs)


@dataclass
class WindowOutput:
    """What the model said about one window."""

    probs: np.ndarray | None
    """(C,) float64 probabilities over the candidate labels; None for asr / sqa."""
    text: str
    """The task's generation: explanation (emotion, sentiment), transcript (asr), answer (sqa);
    "" when nothing was generated."""
    transcript: str | None
    """The extra ASR generation; None when it was not asked for (asr: see ``text``)."""


def _rows(batch: dict[str, Any], rows: slice) -> dict[str, Any]:
    """The ``rows`` of a processor batch: every tensor in it is batch-first."""
    return {k: v[rows] for k, v in batch.items()}


def run_windows(model: Any, processor: Any, waves: Sequence[np.ndarray], plan: TaskPlan) -> list[WindowOutput]:
    """One batch of windows (each (T,) float32 16 kHz, T <= 30 s) -> one output per window.

    The caller holds the model lock and ``torch.inference_mode``.
    """
    from emoreason.data.dataset import TRANSCRIPT_CONTEXT_TASKS

    if processor.transcript_in_prompt and plan.task in TRANSCRIPT_CONTEXT_TASKS:
        return run_with_transcript_context(model, processor, waves, plan)
    b = len(waves)
    extra = plan.transcript_prompt is not None
    prompts = [plan.prompt] * b + ([plan.transcript_prompt] * b if extra else [])
    batch = processor(waves=list(waves) * (2 if extra else 1), prompts=prompts)  # (B or 2B, L) left-padded
    probs: list[np.ndarray | None] = [None] * b
    if plan.sentences:
        # Scored on the task's rows only; they may carry a little extra left padding (the ASR
        # prompt can be longer), which the attention mask and position ids ignore.
        probs = _forced_choice(model, _rows(batch, slice(0, b)) if extra else batch, plan.sentences)
    if plan.max_new_tokens == 0:
        texts = [""] * len(prompts)
    elif extra and plan.quotes == "constrained":
        texts = _constrained(model, batch, waves, plan.max_new_tokens)
    else:
        rows = [(i, "text") for i in range(b)] + ([(i, "transcript") for i in range(b)] if extra else [])
        texts = _generate(model, batch, waves, rows, plan.max_new_tokens)
    texts = [t.strip() for t in texts]
    return [WindowOutput(probs[i], texts[i], texts[b + i] if extra else None) for i in range(b)]


def _forced_choice(model: Any, batch: dict[str, Any], sentences: Sequence[str]) -> list[np.ndarray]:
    """Softmax over the candidate label sentences of every row of ``batch``: B arrays (C,) float64."""
    import torch

    logp = model.score_candidates(batch, list(sentences))  # (B, C)
    return [p.astype(np.float64) for p in torch.softmax(logp.float(), dim=-1).cpu().numpy()]


def run_with_transcript_context(model: Any, processor: Any, waves: Sequence[np.ndarray],
                                plan: TaskPlan) -> list[WindowOutput]:
    """One batch of emotion / sentiment windows for a model trained with the transcript in its
    prompts: the windows' transcripts are generated first (the ASR instruction; ``plan``'s budget,
    or :data:`CONTEXT_TRANSCRIPT_TOKENS` when it generates nothing else), then the task prompt is
    rendered with them, as training rendered the reference transcripts, for the forced choice and
    the explanation (quotes held to the transcript when ``plan.quotes`` is ``constrained``).

    The transcript is always returned: the answer depended on it, even when the caller asked for
    none (``transcript="none"`` cannot apply to such a model)."""
    b = len(waves)
    asr = processor(waves=list(waves), prompts=[plan.transcript_prompt or default_prompt("asr")] * b)
    budget = plan.max_new_tokens or CONTEXT_TRANSCRIPT_TOKENS
    transcripts = [t.strip() for t in _generate(model, asr, waves, [(i, "transcript") for i in range(b)], budget)]
    batch = processor(waves=list(waves), prompts=[plan.prompt] * b, transcripts=transcripts)  # (B, L) left-padded
    probs = _forced_choice(model, batch, plan.sentences)
    if plan.max_new_tokens == 0:
        texts = [""] * b
    elif plan.quotes == "constrained":
        from transformers import LogitsProcessorList

        from emoreason.inference.quote_constraint import QuoteConstraint

        constraint = QuoteConstraint(model.tokenizer, transcripts, model.eos_ids())
        texts = _generate(model, batch, waves, [(i, "text") for i in range(b)], plan.max_new_tokens,
                          logits_processor=LogitsProcessorList([constraint]))
    else:
        texts = _generate(model, batch, waves, [(i, "text") for i in range(b)], plan.max_new_tokens)
    return [WindowOutput(probs[i], texts[i].strip(), transcripts[i]) for i in range(b)]


def _constrained(model: Any, batch: dict[str, Any], waves: Sequence[np.ndarray], max_new_tokens: int) -> list[str]:
    """The 2B rows of ``batch`` (task rows, then ASR rows) generated in two calls: transcripts
    first, then the explanations with quotes held to their window's transcript."""
    from transformers import LogitsProcessorList

    from emoreason.inference.quote_constraint import QuoteConstraint

    b = len(waves)
    transcripts = [t.strip() for t in _generate(model, _rows(batch, slice(b, 2 * b)), waves,
                                                [(i, "transcript") for i in range(b)], max_new_tokens)]
    constraint = QuoteConstraint(model.tokenizer, transcripts, model.eos_ids())
    explanations = _generate(model, _rows(batch, slice(0, b)), waves, [(i, "text") for i in range(b)], max_new_tokens,
                             logits_processor=LogitsProcessorList([constraint]))
    return list(explanations) + transcripts


def stitch(texts: Sequence[str], sep: str = " ") -> str:
    """Window texts in window order -> one text (empty ones skipped)."""
    return sep.join(t for t in (s.strip() for s in texts) if t)
