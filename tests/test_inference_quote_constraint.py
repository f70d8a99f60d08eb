"""Quote-constrained decoding: every closed quote is a transcript span, whatever the model proposes;
the engine generates the transcript first and holds the explanation's quotes to it; ``free`` leaves
generation as it was."""
from __future__ import annotations

import functools
import random
import re
import time

import numpy as np
import pytest
import torch

from emoreason.inference.quote_constraint import (
    QuoteConstraint, TranscriptIndex, allowed_tokens, canonical, decode_each, open_quote, quotable_spans, token_table,
    transcript_index,
)
from emoreason.model.processing import build_tiny_tokenizer
from emoreason.text.quotes import extract_quotes, has_content_word, is_transcript_span

WORDS = ["I", "hate", "this", "don't", "You", "really", "so", "much", "it's", "20", "OK", "no", "never", "again",
         "what", "Why", "the", "a", "café", "well-known", "yes", "stop"]
PUNCT = ["", "", "", ",", ".", "!", "?", " -", ";"]
# The fake model may write any of these: extract_quotes reads '...' and ‘...’ as quotes too, and the
# constraint keeps single quotes from opening (a model once escaped the double-quote constraint so).
UNGUARDED: set[str] = set()


def random_transcript(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) + rng.choice(PUNCT) for _ in range(rng.randint(1, 12)))


@functools.cache
def _fake_model_tokens(tokenizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(opening-mark tokens, tokens the fake never writes outside quotes, quote-mark tokens)."""
    table = token_table(tokenizer)
    unguarded = [i for i, t in enumerate(table.texts) if set(t) & UNGUARDED]
    openers = [i for i in table.opening_tokens if not set(table.texts[i]) & UNGUARDED]
    return (torch.tensor(openers, dtype=torch.long), torch.tensor(unguarded, dtype=torch.long),
            torch.tensor(table.quote_tokens, dtype=torch.long))


def fake_decode(tokenizer, constraint: QuoteConstraint, rng: random.Random, steps: int) -> str:
    """A fake "model": random logits, opening quotes pushed up outside quotes and closing marks
    now and then inside, sampled after the constraint; returns the decoded generation."""
    openers, unguarded, closers = _fake_model_tokens(tokenizer)
    vocab = len(tokenizer)
    ids: list[int] = []
    eos = set(constraint.eos_ids)
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    for _ in range(steps):
        logits = torch.randn((1, vocab), generator=gen) * 2
        if open_quote(tokenizer.decode(ids, skip_special_tokens=True)) is None:
            logits[0, openers] += 6.0 if rng.random() < 0.5 else 0.0
            logits[0, unguarded] = float("-inf")
            logits[0, sorted(eos)] = float("-inf")  # keep writing: the quotes are what is tested
        elif rng.random() < 0.3:
            logits[0, closers] += 8.0
        out = constraint(torch.tensor([ids], dtype=torch.long), logits)
        assert torch.isfinite(out).any(), "the constraint left nothing to generate"
        token = int(torch.multinomial(torch.softmax(out[0], -1), 1, generator=gen))
        if token in eos:
            break
        ids.append(token)
    return tokenizer.decode(ids, skip_special_tokens=True)


def fake_decode_core(tokenizer, index: TranscriptIndex, rng: random.Random, steps: int) -> str:
    """The same fake without torch: picks uniformly among what :func:`allowed_tokens` leaves
    (a closing token 30% of the time inside a quote, an opening one 30% of the time outside);
    fast enough for a 49k vocabulary."""
    table = token_table(tokenizer)
    openers, unguarded, _ = _fake_model_tokens(tokenizer)
    banned = set(unguarded.tolist()) | set(tokenizer.all_special_ids)
    eos = [tokenizer.eos_token_id]
    ids: list[int] = []
    for _ in range(steps):
        inside, listed = allowed_tokens(table, index, tokenizer.decode(ids, skip_special_tokens=True), eos)
        if inside:
            closers = [i for i in listed if i in table.quote_tokens]
            token = rng.choice(closers if closers and rng.random() < 0.3 else listed)
        elif rng.random() < 0.3:
            token = rng.choice([i for i in openers.tolist() if i not in set(listed)] or [eos[0]])
        else:
            token = rng.randrange(table.size)
            if token in banned or token in listed:
                continue
        if token in eos:
            break
        ids.append(token)
    return tokenizer.decode(ids, skip_special_tokens=True)


def check_property(tokenizer, cases: int, steps: int, seed: int, through_processor: bool = True) -> int:
    """``cases`` random transcripts, one fake generation each; every quote is grounded. Returns
    how many quotes were checked (so a test can tell it was not vacuous). ``through_processor``:
    sample from masked torch logits (the ``LogitsProcessor``), else from the torch-free core."""
    rng = random.Random(seed)
    checked = 0
    for case in range(cases):
        transcript = random_transcript(rng)
        if through_processor:
            constraint = QuoteConstraint(tokenizer, [transcript], eos_ids=[tokenizer.eos_token_id])
            text = fake_decode(tokenizer, constraint, rng, steps)
        else:
            text = fake_decode_core(tokenizer, TranscriptIndex(transcript), rng, steps)
        for quote in extract_quotes(text):
            assert is_transcript_span(quote, transcript), (case, transcript, text, quote)
            assert_clean(quote, (case, transcript, text))
            checked += 1
    return checked


_WORD_RE = r"(?:[^\W_]|['’])+"
CLEAN_QUOTE = re.compile(rf"{_WORD_RE}(?:(?:(?:[,;:!?]|\.{{1,3}})? |-){_WORD_RE})*(?:[,;:!?]|\.{{1,3}})?")


def assert_clean(quote: str, context: object) -> None:
    """A quote as a person writes one: words in a plain case, one space between them after at most
    one mark, a content word (not "the", "I will", "The  .", "Called, (mE) (OFF)")."""
    assert CLEAN_QUOTE.fullmatch(quote), (quote, context)
    assert has_content_word(quote), (quote, context)
    for word in re.findall(_WORD_RE, quote):
        assert word[1:] == word[1:].lower() or word == word.upper(), (quote, context)


def random_words(rng: random.Random) -> list[dict]:
    """A random transcript as Whisper words, each with a random ``probability`` (a third low)."""
    return [{"text": rng.choice(WORDS) + rng.choice(PUNCT), "probability": rng.choice([0.05, 0.2, 0.6, 0.9, 0.99])}
            for _ in range(rng.randint(1, 12))]


def check_threshold_property(tokenizer, cases: int, steps: int, seed: int, threshold: float = 0.5) -> tuple[int, int]:
    """Like :func:`check_property` over word-level transcripts with probabilities: every quote is a
    span of one run of words at or above ``threshold``. Returns (quotes checked, quotes that the
    whole transcript would also have allowed but that hold a low word: 0 here by the assertion;
    counted instead for the unthresholded run so a test can tell the threshold mattered)."""
    rng = random.Random(seed)
    checked = crossing = 0
    for case in range(cases):
        words = random_words(rng)
        text = " ".join(w["text"] for w in words)
        spans = quotable_spans(text, words, threshold)
        for held in (True, False):
            index = TranscriptIndex(spans if held else text)
            out = fake_decode_core(tokenizer, index, rng, steps)
            for quote in extract_quotes(out):
                assert is_transcript_span(quote, text), (case, text, out, quote)
                assert_clean(quote, (case, text, out))
                inside = any(is_transcript_span(quote, span) for span in spans)
                if held:
                    assert inside, (case, spans, out, quote)
                    checked += 1
                else:
                    crossing += not inside
    return checked, crossing


def test_quotable_spans_split_at_unsure_words():
    words = [{"text": "I", "probability": 0.9}, {"text": "hate", "probability": 0.2},
             {"text": "this,", "probability": 0.8}, {"text": "really.", "probability": 0.5}]
    text = "I hate this, really."
    assert quotable_spans(text, words, 0.5) == ["I", "this, really."]
    assert quotable_spans(text, words, 0.0) == [text]  # 0: the whole transcript
    assert quotable_spans(text, words, 0.95) == []  # every word unsure: nothing to quote
    assert quotable_spans(text, [], 0.5) == [text]  # the model's ASR: no words, no probabilities
    assert quotable_spans(text, [{"text": "I", "probability": None}], 0.5) == [text]
    index = TranscriptIndex(quotable_spans(text, words, 0.5))
    assert index.can_close("this really") and not index.can_close("hate")
    assert not index.can_close("i")  # a span of function words only is no evidence: never quoted
    assert not index.is_prefix("i this")  # no quote crosses the gap an unsure word leaves
    assert not TranscriptIndex([]) and not TranscriptIndex(quotable_spans(text, words, 0.95))


def test_property_threshold_quotes_hold_no_unsure_word():
    """Random word transcripts with probabilities through the tiny tokenizer: with a threshold,
    every quote lies inside one run of confident words; without it, some quotes do not (the
    property is not vacuous)."""
    checked, crossing = check_threshold_property(build_tiny_tokenizer(), cases=200, steps=40, seed=3)
    assert checked >= 50 and crossing >= 10, (checked, crossing)


def test_all_unsure_transcript_opens_no_quote():
    """No confident word: the constraint forbids every opening mark (an empty index), the fake
    model still writes to the end, and nothing is quoted; through the torch processor too."""
    tok = build_tiny_tokenizer()
    words = [{"text": w, "probability": 0.1} for w in ("I", "hate", "this")]
    spans = quotable_spans("I hate this", words, 0.5)
    assert spans == []
    rng = random.Random(0)
    for _ in range(20):
        constraint = QuoteConstraint(tok, [spans], eos_ids=[tok.eos_token_id])
        text = fake_decode(tok, constraint, rng, steps=30)
        assert text and extract_quotes(text) == [] and open_quote(text) is None, text


def test_canonical_and_index():
    assert canonical("I  HATE, this!") == "i hate this "
    assert canonical("Don’t") == "don't"
    index = TranscriptIndex("I hate this, don't you?")
    assert index.is_prefix("") and index.is_prefix("hate th") and index.is_prefix("this don")
    assert not index.is_prefix("ate") and not index.is_prefix("i this")  # word starts, contiguous
    assert index.can_close("this don't") and index.can_close("hate this")
    # function words only ("you", "this"): no evidence, never closed; a suffix ends at "don't"
    assert not index.can_close("you ") and not index.can_close("this") and not index.is_prefix("don't you")
    assert not index.can_close("hat") and not index.can_close("") and not index.can_close("  ")
    assert not TranscriptIndex("")  # no words: no quotes at all


def test_canonical_maps_character_by_character():
    """canonical() is one regex substitution; it equals the rule it implements, applied per
    character: word characters lowercased, ``’`` -> ``'``, anything else a space, runs of spaces one."""
    def by_character(text: str) -> str:
        out: list[str] = []
        for ch in text.lower().replace("’", "'"):
            c = ch if ch == "'" or re.match(r"[^\W_]", ch) else " "
            if not (c == " " and out and out[-1] == " "):
                out.append(c)
        return "".join(out)

    rng = random.Random(0)
    alphabet = list("aZ '’_-.,!?\"“”«»‘\n\tİßéÉ09") + ["\u00a0", "\u200b", "ﬁ", "Σ"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert canonical(text) == by_character(text), repr(text)


def test_tiny_tokenizer_allowed_sets():
    tok = build_tiny_tokenizer()
    table = token_table(tok)
    assert token_table(tok) is table  # built once per tokenizer
    index = TranscriptIndex("I hate this noise.")
    quote = tok.convert_tokens_to_ids('"')
    inside, forbidden = allowed_tokens(table, index, "It says ", [tok.eos_token_id])
    assert not inside and quote not in forbidden  # opening is fine with a transcript
    inside, allowed = allowed_tokens(table, index, 'It says "I ha', [tok.eos_token_id])
    # only "hate" continues, in a plain case ("haT" is not); no close mid-word
    assert inside and {table.texts[i] for i in allowed} == {"t"}
    inside, allowed = allowed_tokens(table, index, 'It says "I hate', [tok.eos_token_id])
    texts = {table.texts[i] for i in allowed}
    assert '"' in texts and " " in texts and "," in texts and "x" not in texts and "\n" not in texts
    inside, allowed = allowed_tokens(table, index, 'It says "I hate this noise', [tok.eos_token_id])
    texts = {table.texts[i] for i in allowed}
    assert {'"', "."} <= texts and " " not in texts  # the span ends: a space could only dead-end
    texts = {table.texts[i] for i in allowed_tokens(table, index, 'It says "I hate ', [tok.eos_token_id])[1]}
    assert texts == {"t", "T"}  # one space between words, and no close on it
    texts = {table.texts[i] for i in allowed_tokens(table, index, 'It says "I hate', [tok.eos_token_id])[1]}
    assert "," in texts and "." not in texts and ";" not in texts  # a comma may close ("...,"); no other mark here
    commas = TranscriptIndex("I hate this, it is noise.")
    texts = {table.texts[i] for i in allowed_tokens(table, commas, 'It says "I hate this', [tok.eos_token_id])[1]}
    assert {",", '"'} <= texts and "." not in texts
    texts = {table.texts[i] for i in allowed_tokens(table, commas, 'It says "I hate this,', [tok.eos_token_id])[1]}
    assert texts == {" ", '"'}  # the transcript's comma: then a space or the close
    texts = {table.texts[i] for i in allowed_tokens(table, commas, 'It says "hate this, it is noise', [tok.eos_token_id])[1]}
    assert {".", '"', ","} <= texts and "!" not in texts  # the transcript ends on "."
    # no transcript: quotes may not open
    _, forbidden = allowed_tokens(table, TranscriptIndex(""), "It says ", [tok.eos_token_id])
    assert quote in forbidden


def test_demo_degenerate_quotes_cannot_be_written(smollm_tokenizer):
    """What a demo model wrote when kept from the word it wanted (full demo, 2026-11-29): the words
    were transcript words, the rest normalised away ("Called, (mE) (OFF) (", "The  .", "In, June",
    "In-great", "PLATFORM"). Each of these is now masked at its first bad token, and a span of
    function words alone opens no quote."""
    tok = smollm_tokenizer
    table = token_table(tok)
    index = TranscriptIndex("He called me off, his remote movie in June")
    for written, bad in [('says "Called', " ("), ('says "Called', "  "), ('says "called me', " @"),
                         ('says "called', " mE"), ('says "', " called"), ('says "movie', " OFF"),
                         ('says "in', ","), ('says "in', "-"), ('says "called', "."), ('says "off', ";")]:
        texts = {table.texts[i] for i in allowed_tokens(table, index, written, [tok.eos_token_id])[1]}
        assert bad not in texts, (written, bad)
    texts = {table.texts[i] for i in allowed_tokens(table, index, 'says "Called me off,', [tok.eos_token_id])[1]}
    assert " his" in texts and '"' in texts
    _, forbidden = allowed_tokens(table, TranscriptIndex(["The", "I will"]), "In ", [tok.eos_token_id])
    assert {'"', ' "'} <= {table.texts[i] for i in forbidden}  # nothing worth quoting: no quote opens


def test_stuck_quote_falls_back_to_eos():
    tok = build_tiny_tokenizer()
    table = token_table(tok)
    # "é" is two byte tokens, each a partial character: nothing can continue "caf" -> end, don't close
    inside, allowed = allowed_tokens(table, TranscriptIndex("café noir"), 'Says "caf', [tok.eos_token_id])
    assert inside and allowed == [tok.eos_token_id]


def test_rows_that_stopped_changing_keep_their_mask():
    """A finished row (padding after its EOS decodes to nothing) keeps its text from step to step;
    the constraint reuses that row's previous answer, which must equal a fresh computation."""
    tok = build_tiny_tokenizer()
    transcripts = ["I hate this.", "You really stop"]
    prompt = tok("Says", add_special_tokens=False)["input_ids"]
    grow = tok(' "I hate', add_special_tokens=False)["input_ids"]
    reused = QuoteConstraint(tok, transcripts, eos_ids=[tok.eos_token_id])
    scores = torch.zeros((2, len(tok)))
    for k in range(len(grow) + 1):
        # row 0 writes one more token a step; row 1 finished after the prompt (pads: specials)
        rows = [prompt + grow[:k], prompt + [tok.pad_token_id] * k]
        step = torch.tensor(rows)
        fresh = QuoteConstraint(tok, transcripts, eos_ids=[tok.eos_token_id])
        fresh.start = reused.start = 0
        assert torch.equal(reused(step, scores.clone()), fresh(step, scores.clone())), k


def test_memoised_answers_equal_fresh_ones_and_are_shared_per_transcript():
    """Constraints over the same transcript share one index (``transcript_index``) and its memo of
    answers inside quotes; a memoised answer equals the answer of an index that never answered."""
    tok = build_tiny_tokenizer()
    table = token_table(tok)
    rng = random.Random(3)
    eos = [tok.eos_token_id]
    hits = 0
    for _ in range(60):
        transcript = random_transcript(rng)
        shared = transcript_index(transcript)
        assert transcript_index(transcript) is shared
        assert QuoteConstraint(tok, [transcript], eos).indexes[0] is shared
        words = transcript.split()
        start = rng.randrange(len(words))
        body = " ".join(words[start:start + rng.randint(0, 3)])[: rng.randint(0, 12)]
        text = rng.choice(["It says ", "Said: "]) + rng.choice(['"', "“"]) + body
        first = allowed_tokens(table, shared, text, eos)
        again = allowed_tokens(table, shared, text, eos)
        hits += again[1] is first[1]
        assert first == again == allowed_tokens(table, TranscriptIndex(transcript), text, eos), (transcript, text)
    assert hits == 60  # every second call was answered from the memo


def test_property_tiny_tokenizer_quotes_are_transcript_spans():
    tok = build_tiny_tokenizer()
    assert check_property(tok, cases=200, steps=40, seed=0) >= 50


@pytest.fixture(scope="module")
def smollm_tokenizer():
    from transformers import AutoTokenizer

    from emoreason.weights import llm_dir

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(llm_dir("smollm2-135m-instruct"))
    token_table(tok)
    if time.perf_counter() - start > 30:  # measured ~6 s (load + vocabulary table) on 2 cores
        pytest.skip("the packaged tokenizer loads too slowly here")
    return tok


def test_vocabulary_decoded_as_decode_does(smollm_tokenizer):
    """The backend's batch decode (fast path) gives what ``decode([i])`` gives, for every id of the
    byte-level BPE (partial UTF-8 bytes, added audio tokens, specials) and of the tiny tokenizer."""
    for tok in (smollm_tokenizer, build_tiny_tokenizer()):
        n = len(tok)
        assert decode_each(tok, n) == tok.batch_decode([[i] for i in range(n)], skip_special_tokens=False)


def test_token_forms_are_indexed_on_the_first_quote():
    table = token_table(build_tiny_tokenizer())
    index = TranscriptIndex("I hate this.")
    table._forms = None
    allowed_tokens(table, index, "It says ", [0])  # outside a quote: no index needed
    assert table._forms is None
    inside, allowed = allowed_tokens(table, index, 'It says "I ha', [0])
    assert inside and table._forms is not None and {table.texts[i] for i in allowed} == {"t"}


def _trie_continuations(table, index, key):
    """The character-trie walk the form index replaced (the reference it must agree with)."""
    trie = {}
    for i in table._plain:
        node = trie
        for c in canonical(table.texts[i]):
            node = node.setdefault(c, {})
        node.setdefault("", []).append(i)
    allowed = set()
    for suffix in index.matches(key):
        rest = suffix[len(key):]
        starts = [(trie, rest)]
        if (not key or key.endswith(" ")) and " " in trie:
            starts.append((trie[" "], rest))
        for node, text in starts:
            allowed.update(node.get("", ()) if node is not trie else ())
            for c in text:
                node = node.get(c)
                if node is None:
                    break
                allowed.update(node.get("", ()))
    return allowed


def test_form_index_allows_what_the_trie_walk_allowed(smollm_tokenizer):
    table = token_table(smollm_tokenizer)
    rng = random.Random(7)
    words = ["I", "hate", "this", "we're", "going", "to", "the", "beach", "tomorrow", "it's", "42",
             "well-known", "café", "no", "way"]
    for _ in range(60):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) + rng.choice([".", "!", "", "?"])
        index = TranscriptIndex(text)
        canon = canonical(text).strip()
        cut = rng.randint(0, len(canon))
        for key in {"", canon[:cut], canon[:cut].rstrip() + " "}:
            assert table.continuations(index, key) == _trie_continuations(table, index, key), (text, key)


def test_property_smollm2_bpe_quotes_are_transcript_spans(smollm_tokenizer):
    """Byte-level BPE merges quote marks with spaces, words and punctuation ( ' "', '."', '",').
    The torch-free core (a 49k-wide torch step costs ~40 ms on a busy 2-core box); the processor
    glue is what the tiny-tokenizer property and the engine tests go through."""
    assert check_property(smollm_tokenizer, cases=200, steps=40, seed=1, through_processor=False) >= 50


def test_single_quotes_never_open(smollm_tokenizer):
    """A model kept from an ungrounded double-quoted quote must not write it in single quotes:
    outside a quote, tokens that would open '...' or ‘...’ are masked; apostrophes in words are not."""
    tok = smollm_tokenizer
    table = token_table(tok)
    index = TranscriptIndex("I hate this so much.")
    _, forbidden = allowed_tokens(table, index, "He says ", [tok.eos_token_id])
    texts = {table.texts[i] for i in forbidden}
    assert {"'", " '", "‘", " ‘"} & texts == {"'", " '", "‘", " ‘"} & set(table.texts)
    assert {"'", " '"} <= texts
    _, forbidden = allowed_tokens(table, index, "He says I don", [tok.eos_token_id])
    texts = {table.texts[i] for i in forbidden}
    assert "'t" not in texts and "'" not in texts and " '" in texts  # an apostrophe after a word stays
    assert check_property(tok, cases=60, steps=40, seed=7, through_processor=False) >= 10


def test_smollm2_merged_quote_tokens(smollm_tokenizer):
    tok = smollm_tokenizer
    table = token_table(tok)
    index = TranscriptIndex("I hate this so much.")
    _, allowed = allowed_tokens(table, index, 'He says "I hate this', [tok.eos_token_id])
    texts = {table.texts[i] for i in allowed}
    assert {'"', '",', ' so'} <= texts and " much" not in texts
    assert '."' not in texts  # the transcript has no stop after "this"
    _, allowed = allowed_tokens(table, index, 'He says "I hate this so much', [tok.eos_token_id])
    assert {'"', '."', '",'} <= {table.texts[i] for i in allowed}
    _, allowed = allowed_tokens(table, index, 'He says "I', [tok.eos_token_id])
    texts = {table.texts[i] for i in allowed}
    assert " hate" in texts and " this" not in texts
    assert '"' not in texts and '."' not in texts  # "I" alone: a function word, no evidence
    assert {" H", " Ha", " h"} <= texts and not {" hA", " hATE", " HA"} & texts


# ---------------------------------------------------------------------------- the engine
SR = 16_000


def tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    from emoreason.inference.engine import Engine
    from emoreason.testing.tiny import save_tiny_run

    return Engine.load(save_tiny_run(tmp_path_factory.mktemp("run")), device="cpu")


@pytest.fixture
def spy_generate(engine, monkeypatch):
    """Records (rows, gen kwargs) of every generate call; the real tiny model still generates. The
    decode-thread tuner's stopping criterion (emoreason.hardware, on machines with 2+ threads) is
    left out of the record: it changes no token."""
    from emoreason.hardware import DecodeThreadTuner

    calls: list[tuple[int, dict]] = []
    real = engine.model.generate

    def generate(batch, max_new_tokens, **kw):
        tuner_only = all(isinstance(c, DecodeThreadTuner) for c in kw.get("stopping_criteria", [None]))
        calls.append((batch["input_ids"].shape[0], {k: v for k, v in kw.items() if not (k == "stopping_criteria" and tuner_only)}))
        return real(batch, max_new_tokens, **kw)

    monkeypatch.setattr(engine.model, "generate", generate)
    return calls


def test_free_quotes_leave_generation_unchanged(engine, spy_generate):
    """quotes="free": one generate call for task + ASR rows, no processor: the text of before."""
    clips = [("a.wav", tone(1.5)), ("b.wav", tone(2.0, freq=330.0, seed=1))]
    free = engine.analyze(clips, max_new_tokens=12, quotes="free", transcript="model", explain="free")
    assert [(rows, kw) for rows, kw in spy_generate] == [(4, {})]
    [batch_call] = spy_generate
    # the same generate call made by hand on the same rows: identical texts (greedy, fixed weights)
    from emoreason.inference.generation import make_plan

    plan = make_plan("emotion", engine.labels(), None, None, 12, "model")
    batch = engine.processor(waves=[w for _, w in clips] * 2, prompts=[plan.prompt] * 2 + [plan.transcript_prompt] * 2)
    with torch.inference_mode():
        texts = [t.strip() for t in engine.model.generate(batch, max_new_tokens=12)]
    assert [r.explanation for r in free] == texts[:2]
    assert [r.transcript.text for r in free] == texts[2:]


def test_constrained_is_the_default_with_a_transcript(engine, spy_generate):
    [r] = engine.analyze([("a.wav", tone(1.0))], max_new_tokens=6)
    (asr_rows, asr_kw), (task_rows, task_kw) = spy_generate  # transcripts first, then explanations
    assert asr_rows == task_rows == 1 and asr_kw == {}
    [constraint] = task_kw["logits_processor"]
    assert isinstance(constraint, QuoteConstraint) and [i.suffixes for i in constraint.indexes] == [
        TranscriptIndex(r.transcript.text).suffixes]
    spy_generate.clear()
    engine.analyze([("a.wav", tone(1.0))], max_new_tokens=6, transcript="none")
    # no transcript: free quotes, from the forced choice's cache; stopped at the first cut sentence
    assert [set(kw) for _, kw in spy_generate] == [{"prompt_cache", "stopping_criteria"}]
    spy_generate.clear()
    engine.analyze([("a.wav", tone(1.0))], max_new_tokens=0)
    assert spy_generate == []  # --max-new-tokens 0 stays generation-free


def test_constrained_refused_without_a_transcript(engine):
    from emoreason.errors import UserError

    with pytest.raises(UserError, match="needs a transcript"):
        engine.analyze([("a.wav", tone(1.0))], quotes="constrained", transcript="none")
    with pytest.raises(UserError, match="unknown quotes setting"):
        engine.analyze([("a.wav", tone(1.0))], quotes="strict")


TRANSCRIPTS = ["I hate this, I really do!", "Well, it's fine. Nothing to see here.", "No no NO, stop it now."]


def test_engine_constrained_quotes_are_grounded(engine, monkeypatch):
    """The tiny random model, pushed to open quotes often, with fixed ASR outputs: every quote it
    closes is a span of its clip's transcript (``grounded``), and some are closed."""
    from transformers import LogitsProcessor

    real = engine.model.generate
    tok = engine.processor.tokenizer
    quote = tok.convert_tokens_to_ids('"')

    class PushQuotes(LogitsProcessor):
        """Adds a bias to '"' (opening and closing); the constraint runs after it."""

        def __call__(self, input_ids, scores):
            scores = scores.clone()
            scores[:, quote] += 6.0
            return scores

    def generate(batch, max_new_tokens, **kw):
        rows = batch["input_ids"].shape[0]
        if "logits_processor" not in kw:  # the ASR rows: a known transcript per clip
            return [TRANSCRIPTS[i % len(TRANSCRIPTS)] for i in range(rows)]
        [constraint] = kw["logits_processor"]
        return real(batch, max_new_tokens, logits_processor=[PushQuotes(), constraint])

    monkeypatch.setattr(engine.model, "generate", generate)
    clips = [(f"{i}.wav", tone(1.0 + i / 2, freq=200.0 + 50 * i, seed=i)) for i in range(3)]
    # Free answers: the pushed model writes '"Really""Really"...', a loop that the forced path
    # (agreement.loops) cuts whole; free answers keep it, so their quotes are the ones to check.
    results = engine.analyze(clips, max_new_tokens=40, batch_size=3, explain="free")
    results += engine.analyze(clips, max_new_tokens=40, batch_size=3)
    quotes = [(r, q) for r in results for q in r.quotes]
    assert quotes, [r.explanation for r in results]
    for r, q in quotes:
        assert q.grounded and is_transcript_span(q.text, r.transcript.text), (r.explanation, r.transcript.text)
        assert q.start is None and q.end is None
    assert all(r.to_dict()["quotes"][0].keys() == {"text", "start", "end", "grounded"} for r in results if r.quotes)


def test_explanations_continue_from_the_forced_choice_prompt_cache(engine, spy_generate):
    """The explanation reuses the prompt's KV cache from the forced choice (no second prompt pass)
    and says exactly what it says when the prompt runs again: free and forced answers,
    constrained quotes."""
    from emoreason.inference import generation

    clips = [("a.wav", tone(2.0, 180.0, seed=1)), ("b.wav", tone(3.0, 260.0, seed=2))]
    kwargs = dict(max_new_tokens=12, transcript="model", quotes="constrained")
    for explain in ("free", "forced"):
        spy_generate.clear()
        cached = engine.analyze(clips, explain=explain, **kwargs)
        assert any("prompt_cache" in kw for _, kw in spy_generate), explain
        real = generation._forced_choice
        try:  # the same analysis with the cache dropped: the model runs the prompt itself
            generation._forced_choice = lambda *a, **k: (real(*a, **k)[0], None)
            spy_generate.clear()
            again = engine.analyze(clips, explain=explain, **kwargs)
            assert not any("prompt_cache" in kw for _, kw in spy_generate)
        finally:
            generation._forced_choice = real
        assert [(r.label, r.explanation) for r in cached] == [(r.label, r.explanation) for r in again], explain


def test_prompt_cache_matches_a_second_prompt_pass_on_the_model(engine):
    """AudioLLM level: score_candidates' kept cache + generate over prompt, padding, forced
    prefixes of different lengths gives the tokens a plain generate gives."""
    from emoreason.inference.generation import append_tokens

    model, proc = engine.model, engine.processor
    waves = [tone(1.5, 200.0, seed=3), tone(2.5, 300.0, seed=4)]
    batch = proc(waves=waves, prompts=["How does the speaker sound?", "What emotion is this?"])
    batch = {**batch, **model.encode(batch)}
    scores, cache = model.score_candidates(batch, ["The speaker sounds happy.", "sad"], keep_prompt_cache=True)
    assert torch.equal(scores, model.score_candidates(batch, ["The speaker sounds happy.", "sad"]))
    assert cache.get_seq_length() == batch["input_ids"].shape[1] - 1
    ids = model.tokenizer
    suffixes = [ids("The speaker sounds", add_special_tokens=False)["input_ids"], ids("No", add_special_tokens=False)["input_ids"]]
    plain = model.generate(append_tokens(batch, suffixes, proc.pad_token_id), max_new_tokens=8)
    reused = model.generate(append_tokens(batch, suffixes, proc.pad_token_id, pad_between=True), max_new_tokens=8,
                            prompt_cache=cache)
    assert reused == plain
