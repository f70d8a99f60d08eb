"""``OUT/report.md`` + self-contained ``OUT/report.html``: the demo's variants side by side.

The comparison table is eval's (:func:`emoreason.eval.compare.compare_table`), the per-class table
and confusion matrix are those eval wrote for the best variant; this module adds what only the
demo knows: the majority-class baseline, the honest reading of label-only vs reasoning and single vs
dual encoder, stage timings, and the analysed clip.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from emoreason.demo.plan import DemoPlan


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    from emoreason.eval.compare import render_markdown

    return render_markdown(head, rows).rstrip("\n")


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _acc(entry: dict[str, Any]) -> float:
    c = entry.get("classification") or {}
    return float(c.get("weighted_accuracy", entry.get("score", 0.0)))


def findings(plan: DemoPlan, table: dict[str, dict[str, Any]], best: str, majority: tuple[str, float]) -> list[str]:
    """Plain sentences on what the numbers say (no claim the numbers do not support)."""
    label, rate = majority
    out = []
    best_acc = _acc(table[best])
    verdict = "meets" if best_acc >= 2 * rate else "does NOT meet"
    out.append(f"Best variant: {best}, emotion accuracy {best_acc:.1f}% on held-out speakers; the majority class "
               f"({label}) is {rate:.1f}%, so it {verdict} the 2x-majority target ({2 * rate:.1f}%).")
    by_name = {v.name: v for v in plan.variants}

    def compare(a: str, b: str, what: str) -> None:
        if a in table and b in table:
            da, db = _acc(table[a]), _acc(table[b])
            n = table[a].get("n", 0)
            if abs(da - db) < 1e-9:
                out.append(f"{what}: {a} and {b} tie at {da:.1f}% (n={n}).")
            else:
                win, lose = (a, b) if da > db else (b, a)
                fa, fb = table[a]["forced_choice_accuracy"], table[b]["forced_choice_accuracy"]
                out.append(f"{what}: {win} beats {lose} by {abs(da - db):.1f} points ({max(da, db):.1f}% vs "
                           f"{min(da, db):.1f}%; forced choice {a} {fa:.1f}% vs {b} {fb:.1f}%; n={n}, so a "
                           f"difference under ~10 points is within noise).")

    for v in plan.variants:
        if v.style == "label":
            for w in plan.variants:
                if w.style != "label" and w.fusion == v.fusion:
                    compare(w.name, v.name, f"Reasoning ({w.style}) vs label-only targets")
    for v in plan.variants:
        if v.fusion == "none":
            for w in plan.variants:
                if w.fusion != "none" and w.style == v.style:
                    compare(w.name, v.name, "Dual vs single encoder")
    reasoning = [n for n, v in by_name.items() if v.style != "label" and n in table]
    for n in reasoning:
        q = table[n].get("quotes") or {}
        if q:
            fmt = lambda key: f"{q[key]:.1f}" if key in q else "-"  # noqa: E731 - absent when nothing was quoted
            out.append(f"{n}: {q.get('quotation', 0):.1f}% of answers quote the transcript; groundedness "
                       f"{fmt('groundedness')}, relevance {fmt('relevance')} (0-100).")
    if plan.mode == "tiny":
        out.append("Tiny mode: random tiny models trained for a few steps; these numbers only check the plumbing.")
    return out


def _analysis_lines(a: dict[str, Any]) -> list[str]:
    scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(a.get("scores", {}).items(), key=lambda kv: -kv[1]))
    quotes = "; ".join(f'"{q["text"]}"' for q in a.get("quotes", [])) or "(none)"
    cues = a.get("cues") or {}
    cue_text = ", ".join(f"{k} {v}" for k, v in cues.items() if v is not None and k in
                         ("f0_median_hz", "f0_std_semitones", "loudness_dbfs", "speech_s", "pause_count")) or "(none)"
    return [
        f"clip: {a.get('file')} (held-out speaker; gold label {a.get('gold_label')}, {a.get('wording')} wording)",
        f"transcript: {a.get('transcript')}",
        f"model: {a.get('variant')}",
        f"label: {a.get('label')}",
        f"scores: {scores}",
        f"explanation: {a.get('explanation')}",
        f"quotes: {quotes}",
        f"measured cues: {cue_text}",
    ]


def format_analysis(a: dict[str, Any]) -> str:
    """The analysed clip as the few lines the CLI prints."""
    return "\n".join("  " + line for line in _analysis_lines(a))


def _examples(eval_dirs: dict[str, Path], limit: int = 4) -> tuple[list[str], list[list[str]]]:
    """A few held-out rows with every variant's answer (same rows for all variants)."""
    preds = {}
    for name, d in eval_dirs.items():
        path = d / "predictions.jsonl"
        if path.is_file():
            preds[name] = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}
    if not preds:
        return [], []
    first = next(iter(preds.values()))
    ids = list(first)[:limit]
    head = ["clip", "gold", "transcript"] + list(preds)
    rows = []
    for i in ids:
        row = first[i]
        rows.append([i.split("/")[-2] if "/" in i else i, row["label"], row.get("transcript") or ""]
                    + [preds[n].get(i, {}).get("prediction", "-") for n in preds])
    return head, rows


def write_demo_report(out: Path, *, plan: DemoPlan, corpus: dict[str, Any], targets: dict[str, Any],
                      table: dict[str, dict[str, Any]], best: str, majority: tuple[str, float],
                      analysis: dict[str, Any], timings: dict[str, float], eval_dirs: dict[str, Path]) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.html``; return their paths."""
    from emoreason.eval.compare import compare_table
    from emoreason.eval.report import _class_rows, CLASS_HEAD  # eval's per-class table layout

    names = [v.name for v in plan.variants]
    head, rows = compare_table([eval_dirs[n] for n in names], names)
    head = head + ["forced-choice acc"]
    rows = [r + [f"{table[n]['forced_choice_accuracy']:.1f}"] for r, n in zip(rows, names)]
    desc_rows = [[v.name, v.style, "speech + emotion" if v.fusion != "none" else "speech only", v.description] for v in plan.variants]
    facts = findings(plan, table, best, majority)
    best_cls = table[best].get("classification")
    class_rows = _class_rows(best_cls) if best_cls else []
    ex_head, ex_rows = _examples(eval_dirs)
    time_rows = [[k, f"{v:.1f}"] for k, v in timings.items()]
    total = sum(timings.values())
    time_rows.append(["total (sum of stages, as first run)", f"{total:.1f}"])
    speakers = corpus.get("speakers", {})
    intro = (f"Mode **{plan.mode}**: {plan.utterances} synthetic utterances (espeak-ng) from {plan.speakers} speakers; "
             f"trained on speakers {', '.join(speakers.get('train', []))}; evaluated on held-out speakers "
             f"{', '.join(speakers.get('test', []))} ({targets.get('test_rows')} emotion clips). "
             f"Targets from the offline teacher; scores from the offline judge (label extracted from the generated "
             f"answer). 'forced-choice acc' is the engine's label (scores of the label sentences).")
    png = eval_dirs[best] / "confusion.png"

    md = ["# emoreason demo report", "", intro, "", "## Variants", "",
          _md_table(["variant", "targets", "encoders", "what"], desc_rows), "",
          "## Results on held-out speakers", "", _md_table(head, rows), "",
          f"Majority-class rate: {majority[1]:.1f}% ({majority[0]}).", "", "## Findings", ""]
    md += [f"- {f}" for f in facts] + [""]
    if class_rows:
        md += [f"## {best}: per-class accuracy", "", _md_table(CLASS_HEAD, class_rows), ""]
        if png.is_file():
            md += [f"![confusion matrix of {best}]({png.relative_to(out)})", ""]
    md += ["## One held-out clip through the inference engine", "", "```", *_analysis_lines(analysis), "```", ""]
    if ex_rows:
        md += ["## Example answers (same clips, every variant)", "", _md_table(ex_head, ex_rows), ""]
    if targets.get("example_target"):
        md += ["## A detailed reasoning target (offline teacher)", "", f"> {targets['example_target']}", ""]
    md += ["## Stage timings (seconds)", "", _md_table(["stage", "seconds"], time_rows), "",
           "Per-variant evaluation reports: " + ", ".join(f"[{n}]({eval_dirs[n].relative_to(out)}/report.html)" for n in names), ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")

    parts = ["<h1>emoreason demo report</h1>", f"<p>{html.escape(intro.replace('**', ''))}</p>",
             "<h2>Variants</h2>", _html_table(["variant", "targets", "encoders", "what"], desc_rows),
             "<h2>Results on held-out speakers</h2>", _html_table(head, rows),
             f"<p>Majority-class rate: {majority[1]:.1f}% ({html.escape(majority[0])}).</p>",
             "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>"]
    if class_rows:
        parts += [f"<h2>{html.escape(best)}: per-class accuracy</h2>",
                  _html_table(CLASS_HEAD, [[c.replace("**", "") for c in r] for r in class_rows])]
        if png.is_file():
            b64 = base64.b64encode(png.read_bytes()).decode()
            parts.append(f'<img alt="confusion matrix" src="data:image/png;base64,{b64}">')
    parts += ["<h2>One held-out clip through the inference engine</h2>",
              "<pre>" + html.escape("\n".join(_analysis_lines(analysis))) + "</pre>"]
    if ex_rows:
        parts += ["<h2>Example answers (same clips, every variant)</h2>", _html_table(ex_head, ex_rows)]
    if targets.get("example_target"):
        parts += ["<h2>A detailed reasoning target (offline teacher)</h2>",
                  f"<blockquote>{html.escape(targets['example_target'])}</blockquote>"]
    parts += ["<h2>Stage timings (seconds)</h2>", _html_table(["stage", "seconds"], time_rows),
              "<p>Per-variant evaluation reports: " + ", ".join(
                  f'<a href="{html.escape(str(eval_dirs[n].relative_to(out)))}/report.html">{html.escape(n)}</a>' for n in names) + "</p>"]
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .7em;vertical-align:top}"
             "th{background:#eef}img{max-width:100%}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"
             "blockquote{border-left:4px solid #ccd;margin:1em 0;padding:.2em 1em}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>emoreason demo report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return md_path, html_path
