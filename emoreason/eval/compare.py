"""`eval compare`: one table across evaluation directories (like the paper's Tables 2-5)."""
from __future__ import annotations

import json
from pathlib import Path

from emoreason.errors import UserError


def load_metrics(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise UserError(f"{run_dir}: no metrics.json (run `emoreason eval score` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg})") from None


def compare_table(run_dirs: list[str | Path], names: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per run the score of every task seen, the average of the judged tasks
    (emotion / sentiment / sqa, higher is better; ASR WER is shown but not averaged), weighted and
    unweighted accuracy of the first classification task, and quote scores."""
    metrics = [load_metrics(d) for d in run_dirs]
    names = names or [Path(d).name or str(d) for d in run_dirs]
    tasks = sorted({t for m in metrics for t in m["tasks"]})
    judged = [t for t in tasks if t != "asr"]
    head = ["run"] + [t if t != "asr" else "asr WER%" for t in tasks]
    if len(judged) > 1:
        head.append("avg")
    head += ["wt acc", "unwt acc", "macro-F1", "quotation", "grounded", "relevance"]
    rows = []
    for name, m in zip(names, metrics):
        row = [name]
        scores = []
        for t in tasks:
            v = m["tasks"].get(t)
            row.append(f"{v['score']:.1f}" if v else "-")
            if v and t != "asr":
                scores.append(v["score"])
        if len(judged) > 1:
            row.append(f"{sum(scores) / len(scores):.1f}" if len(scores) == len(judged) else "-")
        cls = next((v["classification"] for v in m["tasks"].values() if "classification" in v), None)
        row += [f"{cls['weighted_accuracy']:.1f}", f"{cls['unweighted_accuracy']:.1f}", f"{cls['macro_f1']:.1f}"] if cls else ["-"] * 3
        q = next((v["quotes"] for v in m["tasks"].values() if "quotes" in v), None)
        row += [f"{q['quotation']:.1f}" if q else "-", f"{q['groundedness']:.1f}" if q and "groundedness" in q else "-",
                f"{q['relevance']:.1f}" if q and "relevance" in q else "-"]
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
