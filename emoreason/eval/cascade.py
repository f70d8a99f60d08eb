"""Cascade baseline (paper Table 5): ASR transcript -> text LLM -> label + reasoning.

* ASR: any Whisper checkpoint through transformers (:mod:`emoreason.eval.asr_whisper`: a hub id
  such as ``openai/whisper-large-v3``, a local directory, or ``packaged:whisper-tiny.en`` /
  ``packaged:whisper-base`` offline), greedy, English, clips batched, long clips in 30 s windows.
* Text step: any OpenAI-compatible chat endpoint (through :class:`emoreason.llm_client.ChatClient`:
  timeout, retries with backoff; a failing endpoint stops the run with one line, rows written so
  far are kept), or ``offline``: a lexical rule that picks the
  label whose words (synonyms and cue words) the transcript carries most, and writes a short
  explanation quoting the transcript. It sees only words, never the voice: that is the point of
  the baseline.

Produces prediction rows that ``eval score`` scores like any other model's.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from pathlib import Path

import httpx

from emoreason.errors import UserError
from emoreason.eval.asr_whisper import DEFAULT_ASR, WhisperASR
from emoreason.text.quotes import CUE_WORDS
from emoreason.eval.run import emotion_rows
from emoreason.jsonl import ResumableJsonl
from emoreason.labels import IEMOCAP, SENTIMENT, SYNONYMS, sentiment_of
from emoreason.llm_client import ChatClient, EndpointError, chat_body, describe_failure

LLM_TIMEOUT_S = 120.0
"""Per request to the cascade's text LLM (a long explanation on a busy server can take a while)."""
LLM_RETRIES = 3
ASR_BATCH = 16
"""Clips transcribed per ASR call (rows are still written one by one, as soon as answered)."""


_WORD = re.compile(r"[a-z']+")


def offline_text_answer(transcript: str, task: str, labels: list[str] | None = None) -> tuple[str, str]:
    """(label, answer) from words alone: the label whose synonyms / cue words occur most
    (ties and no evidence -> neutral), with an explanation quoting the transcript."""
    labels = labels or (SENTIMENT if task == "sentiment" else IEMOCAP)
    words = _WORD.findall(transcript.lower())
    text = " " + " ".join(words) + " "
    votes: dict[str, int] = {}
    for w in words:
        canon = SYNONYMS.get(w)
        if canon:
            canon = sentiment_of(canon) if task == "sentiment" and canon not in SENTIMENT else canon
            votes[canon] = votes.get(canon, 0) + 2
    for label, cues in CUE_WORDS.items():
        if label == "neutral":
            continue
        target = sentiment_of(label) if task == "sentiment" and label not in SENTIMENT else label
        votes[target] = votes.get(target, 0) + sum(1 for c in cues if f" {c} " in text)
    ranked = sorted(((v, l) for l, v in votes.items() if l in labels and v > 0), reverse=True)
    label = ranked[0][1] if ranked and (len(ranked) == 1 or ranked[0][0] > ranked[1][0]) else "neutral"
    what = "sentiment" if task == "sentiment" else "emotion"
    quote = transcript.strip()
    if quote:
        answer = f'The speaker\'s {what} is {label}. They say "{quote}", and the wording reads as {label}.'
    else:
        answer = f"The speaker's {what} is {label}; no words could be transcribed."
    return label, answer


def llm_text_answer(client: ChatClient, model: str, transcript: str, task: str) -> Awaitable[str]:
    """Ask a text LLM for a label and a reason grounded in the transcript (the reply text; ``""``
    when the reply has none). Raises the :mod:`emoreason.llm_client` errors."""
    what = "sentiment (positive, negative, neutral)" if task == "sentiment" else "emotion"
    prompt = (f'Transcript of an utterance: "{transcript}"\nWhat {what} does the speaker express? '
              "Answer with the label, then explain briefly, quoting the words that support it.")
    return client.chat(chat_body(model, prompt, max_tokens=256, temperature=0.0), need_answer=False)


def cascade_predictions(manifest: str | Path, out_path: str | Path, llm: str = "offline", llm_model: str | None = None,
                        task: str | None = None, limit: int | None = None, asr: str = DEFAULT_ASR) -> Path:
    """Run the cascade over an emotion / sentiment manifest; write prediction rows (resumable).

    ``asr``: a Whisper spec for :class:`~emoreason.eval.asr_whisper.WhisperASR`.
    """
    rows = emotion_rows(manifest, task, limit, "run the cascade on")
    out_path = Path(out_path)
    with ResumableJsonl(out_path) as out:  # cuts a torn last line before anything is appended
        todo = [r for r in rows if r.id not in out]
    if todo:
        asyncio.run(_run(WhisperASR(asr), manifest, todo, out_path, llm, llm_model, asr_name=asr))
    return out_path


async def _run(asr, manifest: str | Path, todo: list, out_path: Path, llm: str, llm_model: str | None,
               asr_name: str = DEFAULT_ASR) -> None:
    """Transcribe ``todo`` in batches of :data:`ASR_BATCH` and answer each row, appending every
    finished row to ``out_path``. ``asr`` has ``transcribe(list of waves) -> list of texts``."""
    from tqdm import tqdm

    from emoreason.audio import load_audio
    from emoreason.data.manifest import resolve_audio
    from emoreason.data.questions import instruction_for

    client = None
    if llm != "offline":
        try:
            client = ChatClient(llm, api_key="EMPTY", timeout=LLM_TIMEOUT_S, retries=LLM_RETRIES, concurrency=1)
        except httpx.InvalidURL as e:
            raise UserError(f"--cascade-llm {llm!r} is not a valid URL ({e})") from None
    written = 0
    try:
        if client is not None and llm_model is None:
            models = await client.list_models()
            if not models:
                raise UserError(f"cascade LLM {client.base_url}/models lists no model: pass --cascade-model")
            llm_model = models[0]
        with ResumableJsonl(out_path) as out, tqdm(total=len(todo), desc="cascade", unit="utt") as bar:
            for start in range(0, len(todo), ASR_BATCH):
                batch = todo[start:start + ASR_BATCH]
                hyps = asr.transcribe([load_audio(resolve_audio(row, manifest)) for row in batch])
                for row, hyp in zip(batch, hyps):
                    if client is None:
                        _, answer = offline_text_answer(hyp, row.task)
                    else:
                        answer = await llm_text_answer(client, llm_model, hyp, row.task)
                    out.append({"id": row.id, "task": row.task, "label": row.label, "reference": row.label,
                                "prediction": answer, "question": row.instruction or instruction_for(row.id, row.task),
                                "transcript": row.transcript, "asr_transcript": hyp,
                                "model": f"cascade:{asr_name}+{llm}"})
                    written += 1
                    bar.update(1)
    except EndpointError as e:
        raise UserError(f"cascade LLM {llm} failed ({describe_failure(e)}); {written} new rows were kept in "
                        f"{out_path}, rerun the same command to resume") from None
    finally:
        if client is not None:
            await client.aclose()

