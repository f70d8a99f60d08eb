"""The report renderer: one Report, rendered to Markdown (literal) and HTML (autoescaped)."""
import base64

import pytest

from emoreason.eval.compare import render_markdown
from emoreason.eval.render import (Bullets, Image, Paragraph, Preformatted, Quote, Report, Section, Table, code, link,
                                   render, strong)
from emoreason.eval.report import build_report, class_table

PNG = b"\x89PNG\r\n\x1a\nfake"


def _report() -> Report:
    return Report("Demo <report>", [Paragraph(["Mode ", strong("tiny"), ": see ", code("a/b.jsonl"), " and ",
                                               link("the <eval>", "eval/x.html?a=1&b=2"), "."])], [
        Section("Answers", [Table(["clip", "explanation", "score"],
                                  [["c1", "sounds <b>angry</b> | loud", "70.5"], ["c2", "two\nlines", "-"]],
                                  totals=[["Avg", "", "35.2"]])]),
        Section("More", [Bullets(["first & foremost", "x < y"]), Image("matrix <1>", "eval/c.png", PNG),
                         Preformatted("a ``` fence\n<tag>"), Quote("said <i>so</i>")]),
    ])


def test_markdown_is_literal_except_what_breaks_tables():
    assert render(_report(), "md") == (
        "# Demo <report>\n\n"
        "Mode **tiny**: see `a/b.jsonl` and [the <eval>](eval/x.html?a=1&b=2).\n\n"
        "## Answers\n\n"
        "| clip | explanation | score |\n"
        "|---|---|---|\n"
        "| c1 | sounds <b>angry</b> \\| loud | 70.5 |\n"  # the pipe would start a new column
        "| c2 | two lines | - |\n"  # a newline would end the row
        "| **Avg** |  | 35.2 |\n\n"
        "## More\n\n"
        "- first & foremost\n"
        "- x < y\n\n"
        "![matrix <1>](eval/c.png)\n\n"
        "````\na ``` fence\n<tag>\n````\n\n"  # fence longer than the backticks inside
        "> said <i>so</i>\n"
    )


def test_html_escapes_every_text():
    page = render(_report(), "html")
    assert page.startswith("<!doctype html>") and page.endswith("</html>\n")
    assert "<title>Demo &lt;report&gt;</title>" in page and "<h1>Demo &lt;report&gt;</h1>" in page
    assert "<td>sounds &lt;b&gt;angry&lt;/b&gt; | loud</td>" in page
    assert "<b>" not in page and "<i>" not in page and "<tag>" not in page
    assert '<a href="eval/x.html?a=1&amp;b=2">the &lt;eval&gt;</a>' in page
    assert "<strong>tiny</strong>" in page and "<code>a/b.jsonl</code>" in page
    assert "<li>first &amp; foremost</li>" in page and "<li>x &lt; y</li>" in page
    assert "<pre>a ``` fence\n&lt;tag&gt;</pre>" in page
    assert "<blockquote>said &lt;i&gt;so&lt;/i&gt;</blockquote>" in page


def test_html_tables_figures_and_totals():
    page = render(_report(), "html")
    # the figure is embedded (self-contained page), not linked
    assert f'<img alt="matrix &lt;1&gt;" src="data:image/png;base64,{base64.b64encode(PNG).decode()}">' in page
    assert "eval/c.png" not in page
    assert '<td class="num">70.5</td>' in page and '<td class="num">-</td>' in page
    assert '<tfoot>\n<tr><th scope="row">Avg</th><td></td><td class="num">35.2</td></tr>' in page
    linked = render(Report("r", sections=[Section("s", [Image("m", "c.png")])]), "html")
    assert '<img alt="m" src="c.png">' in linked


def test_table_rows_must_match_the_header():
    with pytest.raises(ValueError, match="2 cells, header has 3"):
        Table(["a", "b", "c"], [["1", "2"]])
    with pytest.raises(ValueError, match="unknown report format"):
        render(_report(), "pdf")  # type: ignore[arg-type]


def test_compare_table_is_a_bare_markdown_table():
    assert render_markdown(["run", "score"], [["a|b", "1.0"]]) == "| run | score |\n|---|---|\n| a\\|b | 1.0 |\n"


def test_eval_report_data():
    cls = {"labels": ["sad", "angry"], "n": 3, "unweighted_accuracy": 50.0, "weighted_accuracy": 66.7, "macro_f1": 40.0,
           "per_class": {"sad": {"n": 2, "accuracy": 100.0, "precision": 66.7, "f1": 80.0},
                         "angry": {"n": 1, "accuracy": 0.0, "precision": 0.0, "f1": 0.0}}}
    table = class_table(cls)
    assert table.rows[0] == ["sad", "2", "100.0", "66.7", "80.0"]
    assert table.totals == [["Unwt Avg", "3", "50.0", "", "40.0"], ["Wt Avg", "3", "66.7", "", ""]]
    metrics = {"n": 3, "seed": 0, "bootstrap_resamples": 10, "predictions": "p.jsonl", "judge": "offline",
               "tasks": {"emotion": {"n": 3, "score": 66.7, "ci": {"low": 10.0, "high": 90.0},
                                     "metric": "judge score (0-100)", "classification": cls}}}
    report = build_report(metrics, {"emotion": ("confusion_emotion.png", PNG)})
    assert [s.title for s in report.sections] == ["Headline scores",
                                                  "emotion: per-class accuracy (label extracted from the answer)"]
    md = render(report, "md")
    assert "| emotion | 3 | 66.7 | [10.0, 90.0] | judge score (0-100) |  |" in md
    assert "| **Wt Avg** | 3 | 66.7 |  |  |" in md and "](confusion_emotion.png)" in md
