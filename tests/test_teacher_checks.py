"""Teacher output checks: label agreement and quote grounding."""
from emoreason.text.quotes import extract_quotes
from emoreason.teacher.checks import check_output, mentioned_labels, quote_match_ratio

T = "I told you a hundred times, stop touching my stuff!"


def test_label_stated_in_any_synonym_passes():
    assert check_output(f'The speaker is furious: "stop touching my stuff".', T, "angry", "detailed").ok
    assert check_output("Clearly anger.", T, "ang", "summary").ok  # corpus code canonicalised


def test_missing_negated_or_wrong_label_fails():
    r = check_output('The speaker sounds sad: "stop touching my stuff".', T, "angry", "detailed")
    assert not r.ok and r.reasons == ["label 'angry' not stated (says sad)"]
    r = check_output('The speaker is not angry at all: "stop touching my stuff".', T, "angry", "detailed")
    assert r.reasons == ["label 'angry' only negated"]
    assert mentioned_labels("She isn't happy, she is sad") == [("happy", True), ("sad", False)]


def test_quotes_must_be_in_the_transcript_fuzzily():
    assert extract_quotes('He says \u201cstop touching\u201d and "my stuff" and ""') == ["stop touching", "my stuff"]
    assert quote_match_ratio("Stop touching my stuff", T) == 1.0
    assert quote_match_ratio("stop touchin my stuf", T) >= 0.8  # ASR-ish spelling drift is fine
    r = check_output('The speaker is angry: "leave my car alone".', T, "angry", "detailed")
    assert not r.ok and r.reasons[0].startswith("quote not in transcript")


def test_detailed_needs_a_quote_summary_does_not():
    assert check_output("The speaker is angry.", T, "angry", "detailed").reasons == ["no quote from the transcript"]
    assert check_output("The speaker is angry.", T, "angry", "summary").ok
    # the label word in quotes is not a transcript quote
    assert check_output('The emotion is "angry".', T, "angry", "detailed").reasons == ["no quote from the transcript"]
    assert check_output("The speaker is angry.", "", "angry", "detailed").ok  # nothing to quote


def test_empty_output_fails():
    assert check_output("  ", T, "angry", "summary").reasons == ["empty output"]
