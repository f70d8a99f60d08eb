"""`eval run`: generate predictions for a manifest with our model (inference Engine) or the
cascade baseline, into DIR/predictions.jsonl (appended per row, resumable), then score them."""
from __future__ import annotations

from pathlib import Path

from emoreason.errors import UserError
from emoreason.jsonl import ResumableJsonl

PREDICTIONS = "predictions.jsonl"


def emotion_rows(manifest: str | Path, task: str | None, limit: int | None, purpose: str) -> list:
    """The manifest's emotion / sentiment rows (only ``task``'s when given), the first ``limit``;
    UserError naming ``purpose`` when there are none."""
    from emoreason.data.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if r.task in ("emotion", "sentiment") and (task is None or r.task == task)]
    if limit:
        rows = rows[:limit]
    if not rows:
        raise UserError(f"{manifest}: no emotion / sentiment rows to {purpose}")
    return rows


def model_predictions(run_dir: str | Path, manifest: str | Path, out_path: str | Path, task: str | None = None,
                      limit: int | None = None, batch_size: int = 8, seed: int = 0, max_new_tokens: int = 128) -> Path:
    """Run ``Engine.load(run_dir).analyze`` over the manifest's emotion / sentiment rows.

    The prediction text is the engine's free-text ``explanation`` (what an LLM judge reads); the
    forced-choice ``label`` and its ``scores`` are kept as ``model_label`` / ``model_scores``.
    """
    from tqdm import tqdm

    from emoreason.data.manifest import resolve_audio
    from emoreason.data.questions import instruction_for
    from emoreason.inference.engine import Engine

    rows = emotion_rows(manifest, task, limit, "evaluate")
    out_path = Path(out_path)
    out = ResumableJsonl(out_path)
    todo = [r for r in rows if r.id not in out]
    engine = Engine.load(str(run_dir))
    # Instruction per row from the shared pool, chosen by (seed, row id): reproducible, unlike
    # AudioBench's unseeded random.choice. Rows sharing an instruction are batched together.
    groups: dict[tuple[str, str], list] = {}
    for r in todo:
        instruction = r.instruction or instruction_for(r.id, r.task, seed=seed)
        groups.setdefault((r.task, instruction), []).append(r)
    with out, tqdm(total=len(todo), desc="generating", unit="utt") as bar:
        for (t, instruction), group in groups.items():
            for start in range(0, len(group), batch_size):
                batch = group[start:start + batch_size]
                results = engine.analyze([str(resolve_audio(r, manifest)) for r in batch], task=t,
                                         prompt=instruction, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                         transcript="none")  # the row's own transcript is kept: skip the model's ASR
                for row, res in zip(batch, results):
                    data = res.to_dict()
                    if not res.ok:
                        raise UserError(f"{row.id}: the engine failed: {data.get('error')}")
                    text = data.get("explanation") or f"The speaker sounds {data.get('label')}."
                    out.append({
                        "id": row.id, "task": t, "label": row.label, "reference": row.label, "prediction": text,
                        "question": instruction, "transcript": row.transcript, "model_label": data.get("label"),
                        "model_scores": data.get("scores"), "model": str(run_dir),
                    })
                    bar.update(1)
    return out_path
