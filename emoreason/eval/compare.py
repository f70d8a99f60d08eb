"""`eval compare`: one table across evaluation directories in the paper's layout (Tables 2-5).

One row per run; one column per dataset x task ("IEMOCAP-ER", "MELD-ER", "MELD-SR",
"Spoken-SQuAD-SQA", "LibriSpeech-ASR WER"), named from the rows' ``source`` (the importer's
dataset name) and task; each cell ``score [low, high]`` with its 95% bootstrap interval. Then the
average of the judged columns (higher is better; WER is shown but not averaged) and, for the first
classification task, weighted / unweighted accuracy, macro-F1 and the quote scores (accuracies,
groundedness and relevance with their 95% bootstrap intervals when metrics.json has them).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from emoreason.errors import UserError

TASK_SUFFIX = {"emotion": "ER", "sentiment": "SR", "sqa": "SQA", "asr": "ASR WER"}
"""Column suffix per task, as the paper names its columns (ER: emotion, SR: sentiment recognition)."""
# (pattern on the lowercased source name, display name); first match wins.
DATASET_NAMES: list[tuple[str, str]] = [
    (r"iemocap", "IEMOCAP"), (r"meld", "MELD"), (r"librispeech", "LibriSpeech"),
    (r"spoken.?squad", "Spoken-SQuAD"), (r"slue", "SLUE-SQA"), (r"cn.?college.?listen", "CN-College-Listen"),
    (r"dream.?tts", "DREAM-TTS"), (r"public.?sg.?speech", "Public-SG-Speech"), (r"mnsc|imda", "MNSC"),
    (r"common.?voice", "CommonVoice"), (r"gigaspeech", "GigaSpeech"), (r"tedlium", "TED-LIUM"),
]


def load_metrics(run_dir: str | Path) -> dict:
    """``run_dir/metrics.json``; UserError when missing or unreadable."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise UserError(f"{run_dir}: no metrics.json (run `emoreason eval score` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg})") from None


def column_name(source: str | None, task: str) -> str:
    """``("iemocap_emotion_test", "emotion")`` -> ``"IEMOCAP-ER"``; no source -> the task's name."""
    if not source:
        return "asr WER" if task == "asr" else task
    low = source.lower()
    name = next((display for pattern, display in DATASET_NAMES if re.search(pattern, low)), source)
    if task == "sqa" and name.endswith("-SQA"):  # "SLUE-SQA" is already a task name
        return name
    return f"{name}-{TASK_SUFFIX.get(task, task)}"


def _cells(metrics: dict) -> dict[str, dict]:
    """Column name -> headline (``score``, ``ci``, ``task``) of one run; older metrics.json files
    without ``datasets`` give one column per task."""
    groups = metrics.get("datasets") or [{"source": None, "task": t, **m} for t, m in metrics["tasks"].items()]
    return {column_name(g.get("source"), g["task"]): g for g in groups}


def _cell(g: dict | None) -> str:
    if g is None:
        return "-"
    ci = g.get("ci") or {}
    if "low" in ci and "high" in ci:
        return f"{g['score']:.1f} [{ci['low']:.1f}, {ci['high']:.1f}]"
    return f"{g['score']:.1f}"


def with_ci(section: dict | None, key: str) -> str:
    """``section[key]`` as ``value [low, high]`` when ``section["ci"][key]`` holds its interval
    (metrics.json from before the intervals: the value alone); ``-`` when absent."""
    if not section or key not in section:
        return "-"
    ci = (section.get("ci") or {}).get(key)
    return f"{section[key]:.1f} [{ci['low']:.1f}, {ci['high']:.1f}]" if ci else f"{section[key]:.1f}"


def _column_order(name_task: dict[str, str]) -> list[str]:
    """Emotion, sentiment, SQA, then ASR columns (the paper's order), by name within a task."""
    rank = {"emotion": 0, "sentiment": 1, "sqa": 2, "asr": 3}
    return sorted(name_task, key=lambda c: (rank.get(name_task[c], 4), c))


def compare_table(run_dirs: list[str | Path], names: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the comparison (see the module docstring)."""
    metrics = [load_metrics(d) for d in run_dirs]
    names = names or [Path(d).name or str(d) for d in run_dirs]
    if len(names) != len(metrics):
        raise UserError(f"{len(names)} names for {len(metrics)} evaluation directories")
    cells = [_cells(m) for m in metrics]
    name_task = {c: g["task"] for run in cells for c, g in run.items()}
    columns = _column_order(name_task)
    judged = [c for c in columns if name_task[c] != "asr"]
    head = ["run"] + columns
    if len(judged) > 1:
        head.append("avg")
    head += ["wt acc", "unwt acc", "macro-F1", "quotation", "grounded", "relevance"]
    rows = []
    for name, m, run in zip(names, metrics, cells):
        row = [name] + [_cell(run.get(c)) for c in columns]
        if len(judged) > 1:
            scores = [run[c]["score"] for c in judged if c in run]
            row.append(f"{sum(scores) / len(scores):.1f}" if len(scores) == len(judged) else "-")
        cls = next((v["classification"] for v in m["tasks"].values() if "classification" in v), None)
        row += [with_ci(cls, "weighted_accuracy"), with_ci(cls, "unweighted_accuracy"),
                f"{cls['macro_f1']:.1f}"] if cls else ["-"] * 3
        q = next((v["quotes"] for v in m["tasks"].values() if "quotes" in v), None)
        row += [f"{q['quotation']:.1f}" if q else "-", with_ci(q, "groundedness"), with_ci(q, "relevance")]
        rows.append(row)
    return head, rows


def per_class_table(run_dirs: list[str | Path], names: list[str] | None = None,
                    task: str = "emotion") -> tuple[list[str], list[list[str]]]:
    """(header, rows) in the shape of paper Table 6: per run the accuracy (recall, %) of every
    class of ``task``, then "Wt Avg" (weighted by class size = overall accuracy) and "Unwt Avg"
    (mean per-class accuracy). Classes are the union over runs, in the first run's order."""
    metrics = [load_metrics(d) for d in run_dirs]
    names = names or [Path(d).name or str(d) for d in run_dirs]
    classes: list[str] = []
    for m in metrics:
        cls = m["tasks"].get(task, {}).get("classification")
        classes += [l for l in (cls["labels"] if cls else []) if l not in classes]
    if not classes:
        raise UserError(f"no {task} classification metrics in {', '.join(str(d) for d in run_dirs)}")
    head = ["run"] + classes + ["Wt Avg", "Unwt Avg"]
    rows = []
    for name, m in zip(names, metrics):
        cls = m["tasks"].get(task, {}).get("classification")
        if cls is None:
            rows.append([name] + ["-"] * (len(classes) + 2))
            continue
        per = cls["per_class"]
        row = [name] + [f"{per[l]['accuracy']:.1f}" if l in per and per[l]["n"] else "-" for l in classes]
        rows.append(row + [f"{cls['weighted_accuracy']:.1f}", f"{cls['unweighted_accuracy']:.1f}"])
    return head, rows


def render_markdown(head: list[str], rows: list[list[str]]) -> str:
    """The comparison table as Markdown (the report renderer's table, with no title around it)."""
    from emoreason.eval.render import Report, Table, render

    return render(Report("", [Table(head, rows)]), "md")
