"""Classifier baseline (paper Table 6): an emotion2vec+ checkpoint's own classification head.

    emoreason eval run --classifier ~/ckpt/emotion2vec_plus_large --manifest test.jsonl --out eval/e2v

Inference follows FunASR's ``Emotion2vec.inference`` (utterance granularity): the whole clip,
layer-normalised over its samples when the config says ``normalize``, goes through the encoder
unpadded; frames are mean-pooled; ``proj`` (Linear D -> C) and a softmax give C class
probabilities. emotion2vec+ has C = 9: angry, disgusted, fearful, happy, neutral, other, sad,
surprised, unknown (FunASR's ``tokens.txt``, bilingual "生气/angry" spellings).

The head's classes are mapped onto the manifest's label vocabulary (the gold labels of the rows'
task, in the corpus order of :mod:`emoreason.labels`): classes outside it ("other", "unknown",
or "disgusted" for a 4-class IEMOCAP test) are dropped and the rest renormalised, which is how
emotion2vec is scored on 4-class IEMOCAP; vocabulary labels the head cannot say (IEMOCAP's
"frustrated", "excited") are never predicted and are named on stderr. Sentiment rows sum the
emotion probabilities by polarity. Each clip runs alone (no padding): emotion2vec has no padding
mask, so zero-padding a batch would change the pooled features and the answer.

Rows are written like the other ``eval run`` producers: ``prediction`` "The speaker's emotion is X.",
``model_label``, ``model_scores`` (over the vocabulary), ``head_scores`` (the raw C-class softmax).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emoreason.errors import UserError
from emoreason.eval.run import emotion_rows
from emoreason.jsonl import ResumableJsonl
from emoreason.labels import EMOTION2VEC, IEMOCAP, MELD_EMOTION, SENTIMENT, SYNONYMS, sentiment_of

HEAD = "proj"
"""FunASR's name for emotion2vec+'s classification head (``proj.weight`` (C, D), ``proj.bias``)."""
NO_POLARITY = {"other", "unknown"}
"""Head classes that say nothing about sentiment."""


@dataclass
class Emotion2vecClassifier:
    """Encoder + linear head; :meth:`probabilities` gives the head's softmax for one clip."""

    encoder: torch.nn.Module
    head: torch.nn.Linear
    classes: list[str]
    """Canonical label per head output (``unknown`` for ``<unk>``)."""
    normalize: bool
    """Layer-normalise each wave over its samples first (FunASR ``model_conf.normalize``)."""
    device: str = "cpu"

    @torch.inference_mode()
    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """float32 (T,) at 16 kHz -> (C,) class probabilities."""
        x = torch.from_numpy(np.asarray(wave, dtype=np.float32)).to(self.device)[None]
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        frames, _ = self.encoder(x)  # (1, T', D)
        logits = self.head(frames.mean(dim=1).float())
        return torch.softmax(logits, dim=-1)[0].cpu().numpy()


def head_classes(path: Path, conf: dict, n: int) -> list[str]:
    """Canonical names of the head's ``n`` outputs: ``tokens.txt`` in the checkpoint (FunASR's
    token list, one per line), else a ``tokenizer_conf.token_list`` in the config, else the
    emotion2vec+ order when ``n`` is 9."""
    raw: list[str] | None = None
    listed = (conf.get("tokenizer_conf") or {}).get("token_list")
    if (path / "tokens.txt").is_file():
        raw = [l.strip() for l in (path / "tokens.txt").read_text(encoding="utf-8").splitlines() if l.strip()]
    elif isinstance(listed, list):
        raw = [str(t) for t in listed]
    elif isinstance(listed, str) and (path / Path(listed).name).is_file():
        raw = [l.strip() for l in (path / Path(listed).name).read_text(encoding="utf-8").splitlines() if l.strip()]
    if raw is None:
        if n != len(EMOTION2VEC):
            raise UserError(f"{path}: the head has {n} classes and no tokens.txt names them")
        return list(EMOTION2VEC)
    if len(raw) != n:
        raise UserError(f"{path}: tokens.txt lists {len(raw)} classes but the head has {n}")
    return [_canonical(t) for t in raw]


def _canonical(token: str) -> str:
    """'生气/angry' -> 'angry', '<unk>' -> 'unknown'; unknown spellings stay as written (never predicted)."""
    key = token.strip().lower().rsplit("/", 1)[-1]
    return SYNONYMS.get(key, key)


def load_classifier(path: str | Path, device: str | None = None) -> Emotion2vecClassifier:
    """An emotion2vec(+) checkpoint directory with a classification head -> :class:`Emotion2vecClassifier`."""
    from emoreason.model.emotion2vec import load_emotion2vec, read_emotion2vec_checkpoint

    path = Path(path)
    try:
        conf, state = read_emotion2vec_checkpoint(path)
        encoder = load_emotion2vec(path, (conf, state))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--classifier: {e}") from None
    if f"{HEAD}.weight" not in state:
        raise UserError(f"--classifier {path}: this emotion2vec checkpoint has no classification head ({HEAD}.weight); "
                        "use an emotion2vec+ checkpoint (emotion2vec_plus_base / _large), or train a linear probe "
                        "on its features (e.g. as the emotion encoder of a label-only run)")
    weight = state[f"{HEAD}.weight"].float()
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(state.get(f"{HEAD}.bias", torch.zeros(weight.shape[0])).float())
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_conf = conf.get("model_conf", conf)
    return Emotion2vecClassifier(encoder.eval().to(device), head.eval().to(device),
                                 head_classes(path, conf, weight.shape[0]), bool(model_conf.get("normalize", True)), device)


def label_vocabulary(task: str, gold: list[str]) -> list[str]:
    """The manifest's labels for ``task`` in a stable corpus order (sentiment: its three polarities)."""
    if task == "sentiment":
        return list(SENTIMENT)
    order = [l for v in (IEMOCAP, MELD_EMOTION) for l in v]
    known = [l for l in dict.fromkeys(order) if l in set(gold)]
    return known + sorted(set(gold) - set(known))


def map_scores(probs: np.ndarray, classes: list[str], vocabulary: list[str], task: str) -> dict[str, float]:
    """Head probabilities (C,) -> probabilities over ``vocabulary``, renormalised over the head
    classes that land in it. Sentiment: emotion classes summed by polarity."""
    mass = dict.fromkeys(vocabulary, 0.0)
    for p, c in zip(probs.tolist(), classes):
        target = c if task != "sentiment" else (None if c in NO_POLARITY else sentiment_of(c))
        if target in mass:
            mass[target] += p
    total = sum(mass.values())
    return {l: (v / total if total > 0 else 1 / len(mass)) for l, v in mass.items()}


def answer_sentence(task: str, label: str) -> str:
    """The prediction text the judge reads: "The speaker's emotion is angry." """
    return f"The speaker's {'sentiment' if task == 'sentiment' else 'emotion'} is {label}."


def classifier_predictions(checkpoint: str | Path, manifest: str | Path, out_path: str | Path, task: str | None = None,
                           limit: int | None = None, device: str | None = None) -> Path:
    """Classify the manifest's emotion / sentiment rows with the checkpoint's head; write prediction
    rows to ``out_path`` (appended per row, resumable)."""
    from tqdm import tqdm

    from emoreason.audio import load_audio
    from emoreason.data.manifest import resolve_audio

    every = emotion_rows(manifest, task, None, "classify")
    vocab = {t: label_vocabulary(t, [r.label for r in every if r.task == t and r.label]) for t in {r.task for r in every}}
    rows = every[:limit] if limit else every
    out_path = Path(out_path)
    with ResumableJsonl(out_path) as out:  # cuts a torn last line before anything is appended
        todo = [r for r in rows if r.id not in out]
    if not todo:
        return out_path
    model = load_classifier(checkpoint, device)
    for t, labels in vocab.items():
        reachable = ({sentiment_of(c) for c in model.classes if c not in NO_POLARITY} if t == "sentiment"
                     else set(model.classes))
        if not reachable & set(labels):
            raise UserError(f"--classifier {checkpoint}: none of its classes {model.classes} is a {t} label of "
                            f"{manifest} ({labels})")
        if set(labels) - reachable:
            print(f"classifier: {t} labels {sorted(set(labels) - reachable)} are not among the head's classes and "
                  "are never predicted", file=sys.stderr)
    with ResumableJsonl(out_path) as out:
        for row in tqdm(todo, desc="classifier", unit="utt"):
            probs = model.probabilities(load_audio(resolve_audio(row, manifest)))
            scores = map_scores(probs, model.classes, vocab[row.task], row.task)
            label = max(scores, key=scores.get)
            out.append({"id": row.id, "task": row.task, "label": row.label, "reference": row.label,
                        "prediction": answer_sentence(row.task, label), "transcript": row.transcript,
                        "model_label": label, "model_scores": scores,
                        "head_scores": dict(zip(model.classes, probs.tolist())), "model": f"classifier:{checkpoint}"})
    return out_path
