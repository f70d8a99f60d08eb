"""The evaluation report from metrics.json: report.md, self-contained report.html, confusion PNGs.

The content is built once as :class:`~emoreason.eval.render.Report` data (:func:`build_report`) and
rendered to both formats by :mod:`emoreason.eval.render`.
"""
from __future__ import annotations

import io
from pathlib import Path

from emoreason.eval.compare import with_ci
from emoreason.eval.render import Image, Paragraph, Report, Section, Table, code, write_report_files


PROBE_DIR = "probe"
"""Sub-directory of an evaluation directory where ``eval run --probe-train`` puts its probe."""


def confusion_png(classification: dict, title: str) -> bytes:
    """Row-normalised confusion matrix as PNG bytes (matplotlib Agg; counts printed in cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels, cols = classification["labels"], classification["confusion_columns"]
    counts = np.array(classification["confusion"], dtype=float).reshape(len(labels), len(cols))
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(cols), 1.0 + 0.6 * len(labels)), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(cols)):
            if counts[i, j]:
                ax.text(j, i, int(counts[i, j]), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


HEAD = ["task", "n", "score", "95% CI", "metric", "judge success"]
CLASS_HEAD = ["class", "n", "accuracy", "precision", "F1"]
QUOTE_HEAD = ["task", "quotes", "quotation %", "groundedness (vs said)", "relevance", "quotes judged",
              "groundedness (vs engine transcript)"]
ENGINE_HEAD = ["task", "answers", "label / explanation disagree %", "no label in text", "transcript source",
               "transcriber WER % (vs said)", "utterances"]


def headline_table(metrics: dict) -> Table:
    """One row per task: n, score with its bootstrap CI, metric name and judge success rate."""
    rows = []
    for task, m in metrics["tasks"].items():
        ci = m.get("ci", {})
        success = f"{100 * m['success_rate']:.1f}%" if "success_rate" in m else ""
        rows.append([task, str(m["n"]), f"{m['score']:.1f}", f"[{ci.get('low', 0):.1f}, {ci.get('high', 0):.1f}]",
                     m["metric"], success])
    return Table(HEAD, rows)


def class_table(classification: dict) -> Table:
    """Per-class accuracy / precision / F1 of one classification summary, with the unweighted
    (macro) and weighted averages as totals rows. The demo report shows the same table."""
    c = classification
    rows = [[label, str(int(v["n"])), f"{v['accuracy']:.1f}", f"{v['precision']:.1f}", f"{v['f1']:.1f}"]
            for label, v in c["per_class"].items()]
    # the averages carry their 95% bootstrap interval when metrics.json has one
    totals = [["Unwt Avg", str(c["n"]), with_ci(c, "unweighted_accuracy"), "", f"{c['macro_f1']:.1f}"],
              ["Wt Avg", str(c["n"]), with_ci(c, "weighted_accuracy"), "", ""]]
    return Table(CLASS_HEAD, rows, totals)


def quote_table(metrics: dict) -> Table | None:
    """Quote scores per task that has them; ``None`` when no task quoted anything."""
    rows = []
    for task, m in metrics["tasks"].items():
        q = m.get("quotes")
        if q:  # groundedness / relevance "-" when no quote had a transcript; with their CI when known
            rows.append([task, q.get("mode", "-"), f"{q['quotation']:.1f}", with_ci(q, "groundedness"),
                         with_ci(q, "relevance"), str(q["n_judged"]), with_ci(q, "groundedness_engine")])
    return Table(QUOTE_HEAD, rows) if rows else None


def engine_table(metrics: dict) -> Table | None:
    """Per classification task evaluated through the engine (``eval run --model``): how often the
    generated text commits to another label than the forced choice, and the WER of the transcript
    the engine generated with; None when no task has either."""
    rows = []
    for task, m in metrics["tasks"].items():
        a, t = m.get("agreement"), m.get("transcriber")
        if not (a or t):
            continue
        rows.append([task, str(a["n"]) if a else "-", with_ci(a, "rate") if a else "-",
                     str(a["undecided"]) if a else "-", t["source"] if t else "none",
                     with_ci(t, "wer") if t else "-", str(t["n"]) if t else "-"])
    return Table(ENGINE_HEAD, rows) if rows else None


def probe_section(metrics: dict, probe: dict) -> Section:
    """The linear-probe baseline beside this model's emotion accuracy, and one line when the model
    is far below it (``emoreason.eval.probe``)."""
    from emoreason.eval.probe import gap_note, probe_cells

    acc, ua = probe_cells(probe)
    rows = [["linear probe (frozen emotion encoder, mean+std)", f"{probe['n_train']} / {probe['n_test']}", acc, ua]]
    c = (metrics["tasks"].get(probe["task"]) or {}).get("classification")
    blocks: list = []
    if c:
        rows.append(["this model (label from the answer)", f"- / {c['n']}", f"{c['weighted_accuracy']:.1f}",
                     f"{c['unweighted_accuracy']:.1f}"])
    blocks.append(Table(["", "train / test clips", "accuracy", "unwt accuracy"], rows))
    note = gap_note(c["unweighted_accuracy"], probe, "This model") if c else None
    if note:
        blocks.append(Paragraph([note]))
    return Section(f"Baseline: linear probe on the {probe['task']} rows", blocks)


def build_report(metrics: dict, confusions: dict[str, tuple[str, bytes]], probe: dict | None = None) -> Report:
    """The evaluation report as data. ``confusions``: task -> (PNG file name next to the report,
    PNG bytes) for every task with a classification summary; ``probe``: a probe's ``probe.json``
    (``eval run --probe-train``), shown as a baseline row."""
    intro = Paragraph(["Predictions: ", code(str(metrics.get("predictions", ""))), f"; rows: {metrics['n']}; "
                       f"bootstrap seed {metrics['seed']}, {metrics['bootstrap_resamples']} resamples."])
    normed = {task: m["speaker_norm"]["n"] for task, m in metrics["tasks"].items() if m.get("speaker_norm")}
    if normed:
        intro = Paragraph([*intro.parts, " Speaker normalisation (", code("--speaker-norm"), "): each speaker's "
                           "emotion-encoder frames were normalised to the training clips' statistics, in "
                           + ", ".join(f"{n} {task} rows" for task, n in normed.items()) + "."])
    sections = [Section("Headline scores", [headline_table(metrics)])]
    quotes = quote_table(metrics)
    if quotes:
        sections.append(Section("Grounded reasoning (quotes, 0-100)", [quotes, Paragraph([
            "groundedness (vs said): the judge's rating against the reference transcript (what was said); "
            "vs engine transcript: the offline measure against the transcript the engine generated with "
            "(with constrained quotes 100 by construction: the gap is the transcriber's error)."])]))
    engine = engine_table(metrics)
    if engine:
        sections.append(Section("Label / explanation agreement and transcripts", [engine, Paragraph([
            "disagree: the generated text commits to another label than the forced choice (the engine's "
            "consistent = false), % of the answers with a 95% bootstrap CI; no label in text: consistent = null."])]))
    if probe:
        sections.append(probe_section(metrics, probe))
    for task, m in metrics["tasks"].items():
        c = m.get("classification")
        if c and task in confusions:
            name, png = confusions[task]
            sections.append(Section(f"{task}: per-class accuracy (label extracted from the answer)",
                                    [class_table(c), Image(f"confusion matrix of {task}", name, png)]))
    return Report(f"emoreason evaluation ({metrics.get('judge', 'offline')} judge)", [intro], sections)


def write_report(out_dir: str | Path, metrics: dict) -> list[Path]:
    """Write report.md, report.html and confusion PNGs into ``out_dir``; return the paths.

    ``confusion.png`` repeats the first task's matrix under a fixed name (the CLI and the demo
    point at it without knowing the task)."""
    out = Path(out_dir)
    written: list[Path] = []
    confusions: dict[str, tuple[str, bytes]] = {}
    for task, m in metrics["tasks"].items():
        c = m.get("classification")
        if not c:
            continue
        png = confusion_png(c, f"{task}: confusion (rows = gold)")
        name = f"confusion_{task}.png"
        (out / name).write_bytes(png)
        written.append(out / name)
        if not confusions:
            (out / "confusion.png").write_bytes(png)
            written.append(out / "confusion.png")
        confusions[task] = (name, png)
    from emoreason.eval.probe import read_probe

    probe = read_probe(out / PROBE_DIR)
    md_path, html_path = write_report_files(build_report(metrics, confusions, probe), out)
    return written + [md_path, html_path]
