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
  generated first and the explanations after them, under :class:`QuoteConstraint`; with word
  probabilities (the Whisper source), only runs of words at or above ``quote_min_probability``
  may be quoted (``quote_constraint.quotable_spans``);
- with the Whisper transcript source, the speech encoder's own Whisper decoder (or the engine's
  chosen transcriber) transcribes the windows (with word timings) from the frames the AudioLLM
  computed when they are its encoder's 30 s frames (``emoreason.model.whisper_asr``); no ASR rows
  are added.

Every encoder runs once per batch (:meth:`AudioLLM.encode`): scoring, the generations and the
Whisper decoder read the same frames.

The explanation continues the label: with ``explain="forced"`` (the default) the forced-choice
label's sentence ("The speaker sounds angry.") is the start of the answer and the model generates
what follows, and the engine keeps the explanation's sentences only as long as they go on agreeing
with it (``emoreason.text.agreement``); ``explain="free"`` generates the whole
answer from the prompt (the paper's behaviour; the label may then disagree with the text).

Prompts match training: the default instruction of each task is the first of its training pool
(``emoreason.data.questions``); an SQA prompt is the question itself (the pool's first template is
``{question}``). A model trained "transcribe, then reason" (its processor's
``transcript_in_prompt``, ``data.transcript_in_prompt``) gets, as in training, the transcript in
its emotion / sentiment prompts: :func:`run_with_transcript_context` transcribes the windows first,
then renders the task's prompt with that transcript for the forced choice and the explanation.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
TRANSCRIPT_MODES = ("auto", "model", "whisper", "none")
"""Where the transcript of every window comes from. ``model``: one extra generation per window
with the model's ASR task; ``whisper``: the speech encoder's own Whisper decoder (word timings);
``auto``: whisper when the model has one, else model; ``none``: no transcript."""
EXPLAIN_MODES = ("forced", "free")
"""``forced``: the explanation continues the forced-choice label's sentence; ``free``: it is
generated from the prompt alone."""
QUOTE_MODES = ("constrained", "free")
"""``constrained``: quotes in explanations may only hold transcript spans
(``emoreason.inference.quote_constraint``); ``free``: generation is not touched."""
QUOTE_MIN_PROBABILITY = 0.7
"""Default ``quote_min_probability``. Chosen on the Whisper tiny.en words of 36 dev clips of our
espeak speech (3 held-out speakers) as the threshold that best separates words that were said from
misheard ones (Youden's J: 71 % of the said words stay quotable, 25 % of the misheard ones; J is
flat from 0.5 to 0.8); measured on the test speakers in docs/evaluation.md ("Quotes that were
said"). ``benchmarks/quote_confidence.py`` reruns it."""
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
    transcript_source: str | None = None
    """``model`` (ASR rows, see ``transcript_prompt``), ``whisper`` (the Whisper decoder; for task
    asr it replaces the model's generation) or None (no transcript besides task asr's own)."""
    explain: str = "forced"
    """``forced``: explanations start with the chosen label's sentence (see :data:`EXPLAIN_MODES`)."""
    quote_min_probability: float = 0.0
    """Constrained quotes: transcript words the transcriber gave a lower probability may not be
    quoted (0: every word may; sources without word probabilities ignore it)."""
    labels: tuple[str, ...] = ()
    """The candidate labels, in the order of ``sentences``; empty for asr / sqa."""


def make_plan(task: str, labels: Sequence[str], prompt: str | None, question: str | None,
              max_new_tokens: int, transcript: str, quotes: str | None = None, explain: str = "forced",
              whisper: bool = False, quote_min_probability: float | None = None) -> TaskPlan:
    """Check one call's arguments (UserError, one line) and fix what every window is asked.

    ``labels``: the task's candidate labels (empty for asr / sqa). ``prompt`` overrides the default
    instruction; for sqa it must contain ``{question}``. ``transcript``: one of
    :data:`TRANSCRIPT_MODES` (``auto`` resolves with ``whisper``: whether the model has a Whisper
    decoder; ``whisper`` without one is refused). asr always produces its transcript (it is the
    task): only ``whisper`` changes it (the Whisper decoder's instead of the model's generation);
    for the other tasks the setting decides where their transcript comes from. ``quotes``: one of
    :data:`QUOTE_MODES`, or None: ``constrained`` when an emotion / sentiment explanation gets a
    transcript, else ``free``; ``constrained`` without a transcript is refused (nothing to hold
    quotes to). Tasks without an explanation (asr, sqa) and max_new_tokens 0 ignore it.
    ``explain``: one of :data:`EXPLAIN_MODES` (emotion / sentiment only).
    ``quote_min_probability``: in [0, 1], None: :data:`QUOTE_MIN_PROBABILITY` (constrained quotes
    only; see :attr:`TaskPlan.quote_min_probability`).
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
    if explain not in EXPLAIN_MODES:
        raise UserError(f"unknown explain setting {explain!r} (expected one of {list(EXPLAIN_MODES)})")
    quote_min_probability = check_quote_min_probability(quote_min_probability)
    if quotes == "constrained" and transcript == "none" and task in LABEL_TASKS:
        raise UserError("quotes 'constrained' needs a transcript (transcript 'auto', 'model' or 'whisper'), not 'none'")
    if transcript == "whisper" and not whisper:
        raise UserError("transcript 'whisper' needs a speech encoder that is a frozen, pretrained Whisper checkpoint "
                        "with its decoder weights at hand, or a transcriber (--transcriber packaged:whisper-base); "
                        "use 'model' (the model's own ASR task) or 'auto'")
    if transcript == "auto":
        transcript = "whisper" if whisper else "model"
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
    source = None
    if max_new_tokens > 0 and (transcript == "whisper" or (transcript == "model" and task != "asr")):
        source = transcript
    constrained = source is not None and task in LABEL_TASKS and quotes in (None, "constrained")
    return TaskPlan(
        task=task, prompt=text, sentences=tuple(label_sentence(task, label) for label in labels),
        max_new_tokens=max_new_tokens, transcript_prompt=default_prompt("asr") if source == "model" else None,
        question=question, quotes="constrained" if constrained else "free", transcript_source=source, explain=explain,
        quote_min_probability=quote_min_probability, labels=tuple(labels),
    )


def check_quote_min_probability(value: float | None) -> float:
    """A checked ``quote_min_probability`` (UserError, one line, outside [0, 1] or not a number);
    None -> :data:`QUOTE_MIN_PROBABILITY`."""
    if value is None:
        return QUOTE_MIN_PROBABILITY
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"quote_min_probability must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise UserError(f"quote_min_probability must be in [0, 1], got {value}")
    return value


RowTags = Sequence[tuple[int, str]]
"""What each row of one ``generate`` call is: (window index in the batch, ``"text"`` for the task's
own generation | ``"transcript"`` for the extra ASR generation)."""


class GenerationHooks(Protocol):
    """Extra ``generate`` arguments per call (a streamer, stopping criteria, sampling), for callers
    that serve many requests from one batch (``emoreason.inference.server``)."""

    def generate_kwargs(self, waves: Sequence[np.ndarray], rows: RowTags, prefixes: Sequence[str]) -> dict[str, Any]:
        """Keyword arguments added to ``model.generate`` for one call; ``waves``: the batch's
        windows (each (T,)), ``rows``: what each of the call's rows is, ``prefixes``: per row, the
        forced start of its answer already in the prompt ("" for none; the answer is
        :func:`join_answer` (prefix, generated text))."""
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
              max_new_tokens: int, prefixes: Sequence[str] | None = None, **kwargs: Any) -> list[str]:
    """``model.generate`` with the current :func:`generation_hooks`' extra arguments, on the
    current decode threads (:func:`emoreason.hardware.decoding`)."""
    from emoreason.hardware import decoding, with_stopping_criteria

    hooks = _HOOKS.get()
    own_stops = list(kwargs.pop("stopping_criteria", []))
    with decoding() as tuning:  # the engine's decode threads (emoreason.hardware.decode_threads)
        if hooks is not None:
            kwargs.update(hooks.generate_kwargs(waves, rows, list(prefixes) if prefixes is not None else [""] * len(rows)))
        return model.generate(batch, max_new_tokens=max_new_tokens, **with_stopping_criteria(kwargs, [*own_stops, *tuning]))


@dataclass
class WindowOutput:
    """What the model said about one window."""

    probs: np.ndarray | None
    """(C,) float64 probabilities over the candidate labels; None for asr / sqa."""
    text: str
    """The task's generation: explanation (emotion, sentiment), transcript (asr), answer (sqa);
    "" when nothing was generated."""
    transcript: str | None
    """The window's transcript (ASR rows or the Whisper decoder); None when it was not asked for
    (asr: see ``text``)."""
    words: list[dict[str, Any]] | None = None
    """Whisper source: the transcript's words, ``{"text", "start", "end"}`` seconds in the window."""


def _rows(batch: dict[str, Any], rows: slice) -> dict[str, Any]:
    """The ``rows`` of a processor batch: every tensor in it is batch-first."""
    return {k: v[rows] for k, v in batch.items()}


def run_windows(model: Any, processor: Any, waves: Sequence[np.ndarray], plan: TaskPlan,
                whisper: Any = None, checker: Any = None, prompts: Sequence[str] | None = None) -> list[WindowOutput]:
    """One batch of windows (each (T,) float32 16 kHz, T <= 30 s) -> one output per window.

    ``prompts``: each window's task prompt (default: ``plan.prompt`` for all); windows asked
    different questions share the batch (rows are left-padded, so each is computed as if alone).

    ``whisper``: a ``WhisperDecoderASR`` over the model's speech encoder (needed when
    ``plan.transcript_source == "whisper"``). ``checker``: a second ``WhisperDecoderASR`` whose
    transcript confirms the words constrained quotes may hold (:func:`whisper_transcripts`); None:
    no check. The caller holds the model lock and ``torch.inference_mode``.
    """
    import torch

    from emoreason.data.dataset import TRANSCRIPT_CONTEXT_TASKS

    if processor.transcript_in_prompt and plan.task in TRANSCRIPT_CONTEXT_TASKS:
        return run_with_transcript_context(model, processor, waves, plan, whisper, checker, prompts)
    b = len(waves)
    task_prompts = list(prompts) if prompts is not None else [plan.prompt] * b
    extra = plan.transcript_source == "model"  # B more rows: the ASR instruction on the same windows
    rows = task_prompts + ([plan.transcript_prompt] * b if extra else [])
    batch = processor(waves=list(waves) * (2 if extra else 1), prompts=rows)  # (B or 2B, L) left-padded
    # Every encoder once, on the B windows; the ASR rows reuse the same frames.
    frames = model.encode(_rows(batch, slice(0, b)))
    batch = {**batch, **({k: torch.cat([v, v]) for k, v in frames.items()} if extra else frames)}
    words: list[list[dict[str, Any]] | None] = [None] * b
    transcripts: list[str] | None = None
    quotable: list[list[str]] | None = None
    if plan.transcript_source == "whisper":
        if whisper is None:
            raise ValueError("the plan asks for Whisper transcripts but no Whisper decoder was given")
        transcripts, words = whisper_transcripts(whisper, waves, frames, checker if plan.quotes == "constrained" else None)
        quotable = _quotable(plan, transcripts, words)
    probs: list[np.ndarray | None] = [None] * b
    prompt_cache = None
    if plan.sentences:
        # Scored on the task's rows only; they may carry a little extra left padding (the ASR
        # prompt can be longer), which the attention mask and position ids ignore.
        probs, prompt_cache = _forced_choice(model, _rows(batch, slice(0, b)) if extra else batch, plan.sentences)
    if plan.task == "asr" and transcripts is not None:  # task asr with the Whisper source: no LLM text
        return [WindowOutput(None, transcripts[i], None, words[i]) for i in range(b)]
    if plan.max_new_tokens == 0:
        return [WindowOutput(probs[i], "", None) for i in range(b)]
    prefixes = _forced_prefixes(plan, probs)
    texts, transcripts = _generate_answers(model, processor, batch, waves, plan, prefixes, transcripts, asr_rows=extra,
                                           quotable=quotable, prompt_cache=prompt_cache)
    texts = [join_answer(prefix, t.strip()) for prefix, t in zip(prefixes, texts)]
    return [WindowOutput(probs[i], texts[i], transcripts[i] if transcripts else None, words[i]) for i in range(b)]


def whisper_transcripts(whisper: Any, waves: Sequence[np.ndarray], frames: Mapping[str, Any] | None,
                        checker: Any = None) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """The windows' Whisper transcripts: (texts, words per window).

    ``frames``: the model's encoder outputs of these windows (``model.encode``), reused by a
    transcriber whose encoder is one of them over full 30 s windows (no frame mask; see
    ``whisper_asr``); None: each transcriber encodes the windows itself. ``checker``: a second
    Whisper; each word of ``whisper``'s transcript is then marked ``confirmed`` when the checker's
    transcript of the same window has it in the same order (``emoreason.text.transcript_check``),
    which keeps unconfirmed words out of constrained quotes (``quotable_spans``)."""
    def reused(asr: Any) -> Any:
        shared = asr.shared
        if frames is None or shared is None or f"{shared}_frame_mask" in frames:
            return None
        return frames[f"{shared}_frames"]

    found = whisper.transcribe(list(waves), reused(whisper))
    if checker is not None:
        from emoreason.text.transcript_check import confirm_words

        for mine, theirs in zip(found, checker.transcribe(list(waves), reused(checker))):
            confirm_words(mine.words, theirs.words)
    return [t.text for t in found], [t.words for t in found]


def _keeps_prompt_cache(model: Any) -> bool:
    """Whether ``model.score_candidates`` can return the prompt's KV cache (``AudioLLM``'s can) and
    its ``generate`` would use it: not when it decodes with a static cache (``decode_compile``; the
    prompt cache is a dynamic one, and on a GPU running the prompt again costs less than the
    launch-bound steps the static cache saves)."""
    import inspect

    if getattr(model, "decode_compile", "off") != "off":
        return False
    try:
        return "keep_prompt_cache" in inspect.signature(model.score_candidates).parameters
    except (TypeError, ValueError):  # no signature to read
        return False


def _forced_choice(model: Any, batch: dict[str, Any], sentences: Sequence[str]) -> tuple[list[np.ndarray], Any]:
    """Softmax over the candidate label sentences of every row of ``batch``: (B arrays (C,)
    float64, the prompt's KV cache for the explanation that follows: ``AudioLLM.generate``'s
    ``prompt_cache``; None from a model that does not return one)."""
    import torch

    if _keeps_prompt_cache(model):
        logp, cache = model.score_candidates(batch, list(sentences), keep_prompt_cache=True)  # (B, C)
    else:  # another scorer (a test's fake, a model class of its own): the explanation runs the prompt
        logp, cache = model.score_candidates(batch, list(sentences)), None
    return [p.astype(np.float64) for p in torch.softmax(logp.float(), dim=-1).cpu().numpy()], cache


def _forced_prefixes(plan: TaskPlan, probs: Sequence[np.ndarray | None]) -> list[str]:
    """Per window, the label sentence the answer must start with (``explain="forced"``), else ""."""
    if plan.sentences and plan.explain == "forced":
        return [plan.sentences[int(np.argmax(p))] for p in probs]
    return [""] * len(probs)


def consistency(label: str | None, explanation: str, task: str) -> bool | None:
    """Whether ``explanation`` commits to ``label`` (the forced choice), as the evaluation reads
    answers (``emoreason.text.label_extraction``: quotes ignored, negation and hedges handled,
    near-synonyms such as frustrated / angry agree). None when there is no label or no
    explanation, or the text commits to no label (the "consistent: null" of the JSON)."""
    from emoreason.text.label_extraction import extract_labels, verdict_matches

    if label is None or not explanation.strip() or task not in LABEL_TASKS:
        return None
    got = extract_labels(explanation, task)
    if got.undecided or not got.primary:
        return None
    return verdict_matches(got, label)


class CutSentenceStop:
    """Per-row stopping criterion for forced explanations: a row ends as soon as one of its
    finished sentences is one :func:`emoreason.text.agreement.agreeing_explanation` would cut (a
    repeat, or a sentence that argues against the row's label), or the sentence it is writing
    loops (:func:`emoreason.text.agreement.loops`: such a loop never reaches an end of sentence,
    and went on for the whole token budget). Everything from that sentence on
    is dropped from the answer anyway, so the printed explanation is the same and the tokens after
    it are not generated (a small model that loops went on for its whole budget).

    A sentence counts as finished once text follows its end punctuation (``4.`` may still become
    ``4.5``); the decisions on finished sentences do not depend on later text, which is why the
    cut falls where it would have fallen on the full generation. Rows without a label (``None``)
    never stop here. ``__call__(input_ids (B, T), scores) -> (B,) bool``."""

    def __init__(self, tokenizer: Any, prefixes: Sequence[str], labels: Sequence[str | None], task: str) -> None:
        self.tokenizer = tokenizer
        self.prefixes = list(prefixes)
        self.labels = list(labels)
        self.task = task
        self.start: int | None = None
        self.done = [False] * len(self.labels)
        self.checked = [1] * len(self.labels)  # finished sentences already checked (the first is the label's)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        from emoreason.text.agreement import agreeing_explanation, loops, sentences

        if self.start is None:  # the first call comes after the first new token
            self.start = input_ids.shape[1] - 1
        for row, label in enumerate(self.labels):
            if self.done[row] or label is None:
                continue
            new = self.tokenizer.decode(input_ids[row, self.start:], skip_special_tokens=True)
            parts = sentences(join_answer(self.prefixes[row], new.strip()))
            finished, open_part = parts[:-1], parts[-1] if len(parts) > 1 else ""
            # a loop inside the sentence being written: its last word may still grow ("city" ->
            # "cityscape"), so only the words before it count
            if finished and loops(" ".join(open_part.split()[:-1])):
                self.done[row] = True
                continue
            if len(finished) <= self.checked[row]:
                continue
            self.checked[row] = len(finished)
            _, cut = agreeing_explanation("".join(finished), lambda text: consistency(label, text, self.task))
            self.done[row] = cut > 0
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def _cut_sentence_stop(model: Any, plan: TaskPlan, prefixes: Sequence[str]) -> list[CutSentenceStop]:
    """[the stopping criterion] for forced explanations, [] otherwise."""
    if plan.explain != "forced" or not plan.labels or not any(prefixes):
        return []
    by_sentence = dict(zip(plan.sentences, plan.labels))
    return [CutSentenceStop(model.tokenizer, prefixes, [by_sentence.get(p) for p in prefixes], plan.task)]


def run_with_transcript_context(model: Any, processor: Any, waves: Sequence[np.ndarray], plan: TaskPlan,
                                whisper: Any = None, checker: Any = None,
                                prompts: Sequence[str] | None = None) -> list[WindowOutput]:
    """One batch of emotion / sentiment windows for a model trained with the transcript in its
    prompts: the windows' transcripts come first (the Whisper decoder when the plan's source is
    ``whisper``, else the model's ASR instruction with ``plan``'s budget, or
    :data:`CONTEXT_TRANSCRIPT_TOKENS` when it generates nothing else), then the task prompt is
    rendered with them, as training rendered the reference transcripts, for the forced choice and
    the explanation (forced label prefix, quote constraint and ``checker`` as in :func:`run_windows`).

    The transcript is always returned: the answer depended on it, even when the caller asked for
    none (``transcript="none"`` cannot apply to such a model)."""
    b = len(waves)
    words: list[list[dict[str, Any]] | None] = [None] * b
    if plan.transcript_source == "whisper" and whisper is not None:
        transcripts, words = whisper_transcripts(whisper, waves, None, checker if plan.quotes == "constrained" else None)
        quotable: list[list[str]] | None = _quotable(plan, transcripts, words)
    else:
        quotable = None
        asr = processor(waves=list(waves), prompts=[plan.transcript_prompt or default_prompt("asr")] * b)
        budget = plan.max_new_tokens or CONTEXT_TRANSCRIPT_TOKENS
        transcripts = [t.strip() for t in _generate(model, asr, waves, [(i, "transcript") for i in range(b)], budget)]
    task_prompts = list(prompts) if prompts is not None else [plan.prompt] * b
    batch = processor(waves=list(waves), prompts=task_prompts, transcripts=transcripts)  # (B, L) left-padded
    probs, prompt_cache = _forced_choice(model, batch, plan.sentences)
    if plan.max_new_tokens == 0:
        return [WindowOutput(probs[i], "", transcripts[i], words[i]) for i in range(b)]
    prefixes = _forced_prefixes(plan, probs)
    texts, _ = _generate_answers(model, processor, batch, waves, plan, prefixes, transcripts, asr_rows=False,
                                 quotable=quotable, prompt_cache=prompt_cache)
    texts = [join_answer(prefix, t.strip()) for prefix, t in zip(prefixes, texts)]
    return [WindowOutput(probs[i], texts[i], transcripts[i], words[i]) for i in range(b)]


def _quotable(plan: TaskPlan, transcripts: list[str], words: list[list[dict[str, Any]] | None]) -> list[list[str]]:
    """Per window, the transcript spans a constrained quote may come from (``plan``'s threshold)."""
    from emoreason.inference.quote_constraint import quotable_spans

    return [quotable_spans(t, w, plan.quote_min_probability) for t, w in zip(transcripts, words)]


def _generate_answers(model: Any, processor: Any, batch: dict[str, Any], waves: Sequence[np.ndarray], plan: TaskPlan,
                      prefixes: list[str], transcripts: list[str] | None, asr_rows: bool,
                      quotable: list[list[str]] | None = None,
                      prompt_cache: Any = None) -> tuple[list[str], list[str] | None]:
    """The task rows' continuations (after their ``prefixes``) and, with ``asr_rows`` (rows b..2b of
    ``batch``), the transcripts they generate; ``transcripts`` already known (Whisper) pass through.
    ``quotable``: per window, the spans constrained quotes may hold (default: the whole transcript).
    ``prompt_cache``: the task rows' prompt KV cache from the forced choice (:func:`_forced_choice`):
    their generation continues from it (the forced prefixes go after the prompt, padding between)
    instead of running the prompt again; not used when one call also generates the ASR rows."""
    b = len(waves)
    suffixes = [_token_ids(model.tokenizer, p) for p in prefixes]
    if any(suffixes) and not all(suffixes):
        prompt_cache = None  # a row without a prefix would end in padding between prompt and answer
    text_rows = [(i, "text") for i in range(b)]
    asr_tags = [(i, "transcript") for i in range(b)]
    if plan.quotes == "constrained":
        from transformers import LogitsProcessorList

        from emoreason.inference.quote_constraint import QuoteConstraint

        if asr_rows:  # transcripts first, then the explanations may quote them
            transcripts = [t.strip() for t in _generate(model, _rows(batch, slice(b, 2 * b)), waves, asr_tags,
                                                        plan.max_new_tokens)]
        task_rows = append_tokens(_rows(batch, slice(0, b)) if asr_rows else batch, suffixes, processor.pad_token_id,
                                  pad_between=prompt_cache is not None)
        constraint = QuoteConstraint(model.tokenizer, quotable if quotable is not None else transcripts, model.eos_ids())
        texts = _generate(model, task_rows, waves, text_rows, plan.max_new_tokens, prefixes,
                          logits_processor=LogitsProcessorList([constraint]),
                          stopping_criteria=_cut_sentence_stop(model, plan, prefixes), **_cached(prompt_cache))
        return list(texts), transcripts
    if asr_rows:
        prompt_cache = None  # the cache holds the task rows only, and this call generates the ASR rows too
    batch = append_tokens(batch, suffixes + ([[]] * b if asr_rows else []), processor.pad_token_id,
                          pad_between=prompt_cache is not None)
    row_prefixes = list(prefixes) + ([""] * b if asr_rows else [])
    texts = [t.strip() for t in _generate(model, batch, waves, text_rows + (asr_tags if asr_rows else []),
                                          plan.max_new_tokens, row_prefixes,
                                          stopping_criteria=_cut_sentence_stop(model, plan, row_prefixes),
                                          **_cached(prompt_cache))]
    if asr_rows:  # one call for 2B rows: greedy decoding is memory-bound, so it costs far less than two
        return texts[:b], texts[b:]
    return texts, transcripts


def _cached(prompt_cache: Any) -> dict[str, Any]:
    """``generate``'s keyword for a prompt cache ({} without one: the model runs the prompt)."""
    return {} if prompt_cache is None else {"prompt_cache": prompt_cache}


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    """``text`` as response tokens, tokenised alone as ``score_candidates`` scores it."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def append_tokens(batch: dict[str, Any], suffixes: Sequence[Sequence[int]], pad_id: int,
                  pad_between: bool = False) -> dict[str, Any]:
    """A left-padded prompt batch with ``suffixes[i]`` appended to row i, every row ending at the
    last column ((B, L) -> (B, L + max suffix length)); other keys unchanged. A shorter suffix
    gets its extra padding at the row's start (still left-padded), or with ``pad_between`` between
    the prompt and the suffix, so the prompt keeps its first L columns (a prompt KV cache then
    still fits: ``AudioLLM.generate``'s ``prompt_cache``). Position ids follow the attention mask
    either way, so the model sees the same sequence.

    The forced label sentence becomes the start of the answer this way: the model continues
    after it exactly as after the same tokens it generated itself.
    """
    import torch

    longest = max((len(s) for s in suffixes), default=0)
    if longest == 0:
        return batch
    ids, mask = batch["input_ids"], batch["attention_mask"]
    n, length = ids.shape
    new_ids = torch.full((n, length + longest), pad_id, dtype=ids.dtype, device=ids.device)
    new_mask = torch.zeros((n, length + longest), dtype=mask.dtype, device=mask.device)
    for i, suffix in enumerate(suffixes):
        shift = 0 if pad_between else longest - len(suffix)  # extra left padding of this row
        new_ids[i, shift : shift + length] = ids[i]
        new_mask[i, shift : shift + length] = mask[i]
        if suffix:
            start = length + longest - len(suffix)
            new_ids[i, start:] = torch.tensor(list(suffix), dtype=ids.dtype, device=ids.device)
            new_mask[i, start:] = 1
    return {**batch, "input_ids": new_ids, "attention_mask": new_mask}


def join_answer(prefix: str, continuation: str) -> str:
    """The forced prefix and what the model generated after it, as one answer."""
    if not prefix:
        return continuation
    if not continuation:
        return prefix
    return prefix + ("" if continuation[0] in ".,;:!?)" else " ") + continuation


def stitch(texts: Sequence[str], sep: str = " ") -> str:
    """Window texts in window order -> one text (empty ones skipped)."""
    return sep.join(t for t in (s.strip() for s in texts) if t)
