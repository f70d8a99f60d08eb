"""emoreason.eval: scoring answers the way AudioBench and the paper do, with or without an LLM judge.

    predictions.py  read + validate prediction JSONL (errors name file:line)
    labels.py       label extraction from free text / reference sentences (offline binary rubric)
    quotes.py       quote extraction, offline groundedness and relevance
    wer.py          AudioBench normaliser + corpus WER
    judges/         offline (rules) and llm (OpenAI-compatible, async, cached, retried)
    rubrics/        judge prompt templates (package data)
    scoring.py      `eval score`: resumable append-only scores.jsonl -> metrics.json -> report
    summary.py      per-task scores, bootstrap CIs, classification and quote metrics
    metrics.py      per-class accuracy, weighted / unweighted accuracy, macro-F1, confusion
    bootstrap.py    seeded percentile bootstrap
    report.py       the evaluation report (report.md, self-contained report.html) and confusion PNGs
    render.py       report content as data -> Markdown / HTML (shared by eval, compare and the demo)
    templates/      report.md.j2, report.html.j2 (package data)
    compare.py      one table across evaluation directories
    run.py          `eval run` with the inference engine
    cascade.py      ASR -> text answer baseline (paper Table 5)
    asr_whisper.py  the cascade's ASR: any Whisper through transformers, batched, 30 s windows
    classifier.py   emotion2vec+ head baseline (paper Table 6)
    endpoint.py     another audio LLM behind an OpenAI-compatible endpoint (input_audio parts)
    cli.py          `emoreason eval score | run | compare`
See docs/evaluation.md.
"""
