"""``emoreason export RUN --out DIR [--merge]``: a self-contained model directory with a model card.

    emoreason export runs/mini --out exports/mini            # LoRA kept (adapter/ for peft users)
    emoreason export runs/mini --out exports/mini-merged --merge   # LoRA folded into the LLM weights

A run's ``final/`` names its base weights by id or path (``packaged:NAME``, a hub id, a local
folder) and stores only what training changed. An export stores everything: every part's
architecture config in a subfolder (``llm/``, ``speech_encoder/``, ``emotion_encoder/``, referred to
as ``./NAME`` in ``config.yaml``, resolved against the directory on load) and all weights in
``random_base.safetensors`` + ``trainable.safetensors``, so it loads with no hub, no packaged weights
and no original paths: ``emoreason.load_model(DIR)``, ``AutoModel.from_pretrained(DIR)`` after
``import emoreason``, ``--model DIR`` everywhere. ``README.md`` holds the run's config and its
evaluation tables (``report.md`` files found under the run, or given with ``--eval``).

This is also the converter for run directories written before ``config.json`` / ``adapter/``
existed: they still load with ``load_model``; exporting them adds the transformers view.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from emoreason.config import EncoderConfig, ModelConfig
from emoreason.errors import UserError

LOCAL_PARTS = ("llm", "speech_encoder", "emotion_encoder")
"""Subfolders of an export holding each part's architecture (config files only, no weights)."""
_GENERATED = ("builtin:", "preset:")


def model_dir(run: Path) -> Path:
    """The saved model of a run directory (``RUN/final``), or ``run`` itself when it is one."""
    for candidate in (run / "final", run):
        if (candidate / "config.yaml").is_file() and (candidate / "trainable.safetensors").is_file():
            return candidate
    raise UserError(f"{run}: no saved model here (expected {run}/final/config.yaml and trainable.safetensors)")


def _save_architecture(part: Any, module: Any, folder: Path) -> None:
    """Write what ``build_model`` needs to rebuild ``module`` with ``init: random`` into ``folder``."""
    from emoreason.model.builder import EMOTION2VEC_CONFIG
    from emoreason.model.emotion2vec import Emotion2vecEncoder

    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(module, Emotion2vecEncoder):
        (folder / EMOTION2VEC_CONFIG).write_text(json.dumps(dataclasses.asdict(module.config), indent=2) + "\n")
        return
    # WhisperFrames wraps .encoder, WaveFrames .model: the transformers module holding .config
    inner = next((getattr(module, a) for a in ("encoder", "model") if hasattr(module, a)), module)
    inner.config.save_pretrained(str(folder))


def self_contained_config(cfg: ModelConfig, model: Any, out: Path, merge: bool) -> ModelConfig:
    """``cfg`` rewritten so every part is rebuilt from ``out``'s subfolders (``init: random``,
    weights loaded afterwards); writes those subfolders. ``merge``: LoRA is off (folded in)."""
    parts: dict[str, Any] = {}
    for role in ("speech_encoder", "emotion_encoder"):
        part: EncoderConfig | None = getattr(cfg, role)
        if part is None:
            continue
        if part.path and not part.path.startswith(_GENERATED):
            _save_architecture(part, getattr(model, role), out / role)
            part = dataclasses.replace(part, path=f"./{role}")
        parts[role] = dataclasses.replace(part, init="random")
    llm = cfg.llm
    if not llm.path.startswith(_GENERATED):
        folder = out / "llm"
        base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
        base.config.save_pretrained(str(folder))  # vocab_size already counts the audio tokens
        base.generation_config.save_pretrained(str(folder))
        model.tokenizer.save_pretrained(str(folder))
        llm = dataclasses.replace(llm, path="./llm", gguf_file=None)
    parts["llm"] = dataclasses.replace(llm, init="random")
    lora = dataclasses.replace(cfg.lora, enabled=cfg.lora.enabled and not merge)
    return dataclasses.replace(cfg, lora=lora, **parts)


def find_eval_reports(run: Path) -> list[Path]:
    """``report.md`` files of ``emoreason eval`` runs kept inside the run directory (two levels deep)."""
    return sorted(p for pattern in ("report.md", "*/report.md", "*/*/report.md") for p in run.glob(pattern)
                  if not {"final", "best"} & set(p.relative_to(run).parts))


def model_card(run: Path, cfg: ModelConfig, run_config: str | None, reports: list[Path], merged: bool) -> str:
    """README.md text: what the directory is, how to load it, the run's config and evaluation tables."""
    lines = [
        "---", "library_name: emoreason", "tags: [audio, speech-emotion-recognition, audio-llm]", "---", "",
        f"# {run.resolve().name}", "",
        "A speech emotion reasoning model (emoreason AudioLLM: speech encoder"
        + (f" + emotion encoder, fusion `{cfg.fusion}`" if cfg.emotion_encoder is not None else "")
        + f", LLM with LoRA {'merged into its weights' if merged else 'as a PEFT adapter in adapter/'}),"
        " exported with `emoreason export`. Self-contained: no hub or packaged weights are needed.", "",
        "```python", "import emoreason", "from transformers import AutoModel", "",
        "engine = emoreason.Engine.load(\"THIS_DIR\")            # analyse clips",
        "model = AutoModel.from_pretrained(\"THIS_DIR\")         # .audiollm, .processor", "```", "",
        "```bash", "emoreason analyze --model THIS_DIR clip.wav", "```", "",
    ]
    if reports:
        lines += ["## Evaluation", ""]
        for report in reports:
            lines += [f"From `{report.relative_to(run)}`:", "", report.read_text().strip(), ""]
    else:
        lines += ["## Evaluation", "", "No evaluation report was found with this run (`emoreason eval run ... --out RUN/eval`).", ""]
    if run_config is not None:
        lines += ["## Training config", "", "```yaml", run_config.strip(), "```", ""]
    return "\n".join(lines)


def export_run(run: str | Path, out: str | Path, merge: bool = False, eval_reports: list[str | Path] | None = None) -> Path:
    """Write the self-contained export of ``run`` (a run directory or a saved model directory) to
    ``out`` (must not exist or be empty; written to a temporary sibling, then renamed). Returns ``out``."""
    import torch

    from emoreason.config import to_dict
    from emoreason.model.builder import load_pretrained, read_config, save_pretrained

    run, out = Path(run), Path(out)
    source = model_dir(run)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not empty: choose a new --out directory")
    reports = [Path(p) for p in eval_reports] if eval_reports else find_eval_reports(run)
    missing = [str(p) for p in reports if not p.is_file()]
    if missing:
        raise UserError(f"--eval: no such report {missing[0]} (give report.md files or the folders holding them)")
    cfg = read_config(source)
    model, processor = load_pretrained(source, device="cpu")
    if merge and cfg.lora.enabled:
        model.llm = model.llm.merge_and_unload()  # W + B A * alpha / r, then the plain transformers LLM
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    new_cfg = self_contained_config(cfg, model, tmp, merge)
    with torch.no_grad():
        save_pretrained(model, new_cfg, tmp)
    processor.save_pretrained(tmp)
    run_config = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else None
    if run_config is None:
        import yaml

        run_config = yaml.safe_dump({"model": to_dict(cfg)}, sort_keys=False)
    (tmp / "README.md").write_text(model_card(run, new_cfg, run_config, reports, merge and cfg.lora.enabled))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a run as a self-contained model directory (transformers/peft-loadable, model card)",
        description="Write RUN (a run directory or its final/) as a self-contained directory: every part's "
                    "architecture and weights, config.json for transformers' AutoModel (after `import emoreason`), "
                    "the LoRA as a PEFT adapter (or merged with --merge), and a README.md model card with the "
                    "run's config and evaluation tables. Also converts run directories from older versions.",
    )
    p.add_argument("run", metavar="RUN", help="run directory (RUN/final is exported) or a saved model directory")
    p.add_argument("--out", required=True, metavar="DIR", help="new directory to write")
    p.add_argument("--merge", action="store_true", help="fold the LoRA into the LLM's weights (no adapter at load time)")
    p.add_argument("--eval", nargs="+", metavar="REPORT", default=None,
                   help="evaluation report.md files (or folders holding one) for the model card "
                        "(default: report.md files found under RUN)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    reports = None
    if args.eval:
        reports = [Path(p) / "report.md" if Path(p).is_dir() else Path(p) for p in args.eval]
    out = export_run(args.run, args.out, merge=args.merge, eval_reports=reports)
    print(f"wrote {out} (load with emoreason.load_model, AutoModel.from_pretrained after `import emoreason`, or --model {out})")
    return 0
