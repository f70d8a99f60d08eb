"""report.md + self-contained report.html (plots as base64 PNG) + confusion.png from metrics.json."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path


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


def _headline_rows(metrics: dict) -> list[list[str]]:
    rows = []
    for task, m in metrics["tasks"].items():
        ci = m.get("ci", {})
        extra = ""
        if "success_rate" in m:
            extra = f"{100 * m['success_rate']:.1f}%"
        rows.append([task, str(m["n"]), f"{m['score']:.1f}", f"[{ci.get('low', 0):.1f}, {ci.get('high', 0):.1f}]",
                     m["metric"], extra])
    return rows


def _class_rows(c: dict) -> list[list[str]]:
    rows = [[l, str(int(v["n"])), f"{v['accuracy']:.1f}", f"{v['precision']:.1f}", f"{v['f1']:.1f}"]
            for l, v in c["per_class"].items()]
    rows.append(["**Unwt Avg**", str(c["n"]), f"{c['unweighted_accuracy']:.1f}", "", f"{c['macro_f1']:.1f}"])
    rows.append(["**Wt Avg**", str(c["n"]), f"{c['weighted_accuracy']:.1f}", "", ""])
    return rows


def _quote_rows(metrics: dict) -> list[list[str]]:
    out = []
    for task, m in metrics["tasks"].items():
        q = m.get("quotes")
        if q:
            fmt = lambda key: f"{q[key]:.1f}" if key in q else "-"  # noqa: E731 - no quote had a transcript
            out.append([task, f"{q['quotation']:.1f}", fmt("groundedness"), fmt("relevance"), str(q["n_judged"])])
    return out


HEAD = ["task", "n", "score", "95% CI", "metric", "judge success"]
CLASS_HEAD = ["class", "n", "accuracy", "precision", "F1"]
QUOTE_HEAD = ["task", "quotation %", "groundedness", "relevance", "quotes judged"]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.replace('**', ''))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_report(out_dir: str | Path, metrics: dict) -> list[Path]:
    """Write report.md, report.html and confusion PNGs into ``out_dir``; return the paths."""
    out = Path(out_dir)
    title = f"emoreason evaluation ({metrics.get('judge', 'offline')} judge)"
    md = [f"# {title}", "", f"Predictions: `{metrics.get('predictions', '')}`; rows: {metrics['n']}; "
          f"bootstrap seed {metrics['seed']}, {metrics['bootstrap_resamples']} resamples.", "",
          "## Headline scores", "", _md_table(HEAD, _headline_rows(metrics)), ""]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Predictions: <code>{html.escape(str(metrics.get('predictions', '')))}</code>; rows: {metrics['n']}.</p>",
             "<h2>Headline scores</h2>", _html_table(HEAD, _headline_rows(metrics))]
    quotes = _quote_rows(metrics)
    if quotes:
        md += ["## Grounded reasoning (quotes, 0-100)", "", _md_table(QUOTE_HEAD, quotes), ""]
        parts += ["<h2>Grounded reasoning (quotes, 0-100)</h2>", _html_table(QUOTE_HEAD, quotes)]
    written = []
    first_png = True
    for task, m in metrics["tasks"].items():
        c = m.get("classification")
        if not c:
            continue
        png = confusion_png(c, f"{task}: confusion (rows = gold)")
        name = f"confusion_{task}.png"
        (out / name).write_bytes(png)
        written.append(out / name)
        if first_png:
            (out / "confusion.png").write_bytes(png)
            written.append(out / "confusion.png")
            first_png = False
        md += [f"## {task}: per-class accuracy (label extracted from the answer)", "",
               _md_table(CLASS_HEAD, _class_rows(c)), "", f"![confusion matrix]({name})", ""]
        b64 = base64.b64encode(png).decode()
        parts += [f"<h2>{html.escape(task)}: per-class accuracy</h2>", _html_table(CLASS_HEAD, _class_rows(c)),
                  f'<img alt="{html.escape(task)} confusion matrix" src="data:image/png;base64,{b64}">']
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .7em;text-align:right}"
             "th{background:#eef}td:first-child{text-align:left}img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    (out / "report.html").write_text(page, encoding="utf-8")
    return written + [out / "report.md", out / "report.html"]
