"""The embedded judge: no LLM, deterministic, ~10k rows in a few seconds.

* emotion / sentiment: binary rubric by label extraction (text/label_extraction.py), read the way
  AudioBench's Llama-3-70B judge reads it unless asked for the literal reading (BinaryReading);
* sqa: 0-5 from containment of the reference's words (judges/sqa_offline.py; an estimate, not
  AudioBench's LLM rubric; use an LLM judge for SQA numbers you report);
* asr: per-utterance WER (corpus WER is computed in the metrics);
* quotes: groundedness by fuzzy alignment to the transcript, relevance by label / cue words.
"""
from __future__ import annotations

from dataclasses import fields

from emoreason.text.label_extraction import BinaryReading, binary_match
from emoreason.text.quotes import groundedness, relevance
from emoreason.eval.judges.sqa_offline import rate_sqa
from emoreason.eval.wer import utterance_wer


class OfflineJudge:
    """Rule-based judge; :meth:`judge` is synchronous (no I/O).

    The four flags are the fields of :class:`~emoreason.text.label_extraction.BinaryReading` (all on
    by default: AudioBench's judge accepts near-synonym classes, reads "no emotion detected" as
    neutral, rates hedged answers wrong and reads implied sentiment); ``reading`` overrides them.
    """

    is_async = False

    def __init__(self, *, merge_near_synonyms: bool = True, no_emotion_is_neutral: bool = True,
                 hedged_is_wrong: bool = True, implied_sentiment: bool = True,
                 reading: BinaryReading | None = None):
        self.reading = reading or BinaryReading(merge_near_synonyms=merge_near_synonyms,
                                                no_emotion_is_neutral=no_emotion_is_neutral,
                                                hedged_is_wrong=hedged_is_wrong, implied_sentiment=implied_sentiment)

    @property
    def name(self) -> str:
        """``offline`` for the default reading, ``offline:literal`` or ``offline:<flags off>`` otherwise:
        the name lands in metrics.json and keeps a resumed output directory on one reading."""
        if self.reading == BinaryReading():
            return "offline"
        if self.reading == BinaryReading.literal():
            return "offline:literal"
        off = [f.name for f in fields(self.reading) if not getattr(self.reading, f.name)]
        return "offline:no-" + ",no-".join(off)

    def judge(self, row: dict) -> dict:
        task = row["task"]
        out: dict = {"success": True}
        if task in ("emotion", "sentiment"):
            score, got = binary_match(row["prediction"], row["gold"], task, self.reading)
            out["score"] = float(score)
            out["judge"] = {"name": self.name, "extracted": got.to_dict()}
        elif task == "sqa":  # containment of the reference's words: judges/sqa_offline.py
            rated = rate_sqa(row["reference"], row["prediction"], row.get("question") or "")
            out["score"], out["judge"] = float(rated.rating), {"name": self.name, **rated.to_dict()}
        elif task == "asr":
            out["score"] = utterance_wer(row["reference"], row["prediction"])
            out["judge"] = {"name": "wer"}
        out.update(self.judge_quotes(row))
        return out

    @staticmethod
    def judge_quotes(row: dict) -> dict:
        """Offline groundedness / relevance (0-2) for rows with quotes, a transcript and a label."""
        quotes = row.get("quotes") or []
        if not quotes or not row.get("transcript") or not row.get("gold"):
            return {}
        return {"groundedness": groundedness(quotes, row["transcript"]),
                "relevance": relevance(quotes, row["gold"])}
