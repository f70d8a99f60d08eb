"""Quote-constrained decoding: inside a quotation the model may only write transcript words.

While a row's generated text has an open double quote (``"``, ``“`` or ``«``), only tokens are allowed
that keep the quote's text, normalised the way :func:`emoreason.text.quotes.normalize_quote` does
(lowercase, straight apostrophes, punctuation and spacing as word breaks), a prefix of a span of
the row's transcript that starts at a word boundary; the closing mark (``"`` after ``"``, ``”``
after ``“``, ``»`` after ``«``) only once the quote holds a content word and ends at the end of a transcript word.
So every quote the model closes is a transcript span after normalisation.

How (all plain Python; :class:`QuoteConstraint` is the thin ``LogitsProcessor`` on top):

- :class:`TokenTable` (once per tokenizer, cached): each vocabulary token's decoded text, reduced
  to its *canonical form* (the per-character normalisation: word characters lowercased, other
  characters a single space), indexed by that form; tokens that hold a quote mark are kept aside
  (a few hundred) and checked one by one by simulating them character by character.
- :class:`TranscriptIndex` (per row): the normalised transcript's suffixes that start at a word
  (sorted, each with a trailing space so a complete word ends in one): the quote so far is a valid
  prefix when some suffix starts with its canonical form (a bisect); the tokens that may follow are
  the tokens whose form is a prefix of one of those suffixes' remainders (looked up prefix by
  prefix, up to the longest form: tokens are a few characters).

A transcript may come as several *quotable spans* instead of one text (:func:`quotable_spans`:
the runs of words the transcriber was confident about, ``quote_min_probability``, and, with a
second transcriber, that it heard too, ``confirmed``): suffixes then end with their span, so a
quote never holds a word between spans (a low-confidence or unconfirmed one).

Single quotes are never opened: ``extract_quotes`` also reads ``'...'`` (a straight quote after a
non-word character) and ``‘...’`` as quotations, so outside a quote a token that would start one
is masked (:meth:`TokenTable.single_openers`); apostrophes inside words (``don't``,
``speakers'``) stay allowed. Without that, a model kept from an ungrounded double-quoted quote
writes it in single quotes instead (seen in the demo: 'I love my wife' from a transcript without
those words).

The quote's raw text must also look like a quotation (:func:`surface_ok`: words in a plain case,
between them one space, after a punctuation mark only where the transcript has that mark after that
word, no gap before the first word), and a
quote closes only once it holds a content word (:data:`emoreason.text.quotes.FUNCTION_WORDS`); a
suffix ends at its span's last content word, so every quote that is started can be closed.
Without these a model kept from the word it wanted filled the quote with what normalises away:
"The  .", "Called, (mE) (OFF) (", "I will ()." (the full demo, 2026-11-29).

Rows without a transcript (empty ASR output, or no span left) may not open a quote: every token holding an opening
mark is masked (there is nothing to ground a quote in). Tokens that decode to a partial UTF-8
character (``\\ufffd``), special tokens and newlines are not allowed inside a quote; if nothing is
allowed (e.g. a transcript word the tokenizer can only spell with byte pieces) the closing mark
is allowed when it would be valid, else only EOS, so generation always ends and never closes an
ungrounded quote (an unclosed quote is not extracted). The tokenizer must decode single tokens with
their leading space (byte-level BPE such as SmolLM2 / Llama 3, and the tiny byte tokenizer do;
SentencePiece tokenizers strip it and are not supported).
"""
from __future__ import annotations

import bisect
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from emoreason.text.quotes import FUNCTION_WORDS, has_content_word, normalize_quote

OPEN_TO_CLOSE = {'"': '"', "“": "”", "«": "»"}
"""Opening mark -> its closing mark (what ``extract_quotes`` pairs)."""
QUOTE_CHARS = frozenset('"“”«»‘')
"""Characters that open or close a quotation; ``’`` is not here: it is also an apostrophe."""
_SINGLE_OPENING = re.compile(r"(?:^|(?<=[^\w']))'|‘")
"""Where a token opens a single-quoted span as ``extract_quotes`` reads one: a straight ``'`` not
after a word character or another ``'`` (at the token's start, the text before decides), or ``‘``."""
_LEADING_GAP = re.compile(r"^(?:[^\w']|_)+")
_TRAILING_GAP = re.compile(r"(?:[^\w']|_)+$")
MAX_GAP = 4
"""At most this many non-word characters in a row inside a quote: punctuation and spaces all
normalise away, so without a limit a degenerate model can fill a quote with "____" forever."""
_SURFACE_WORD = re.compile(r"(?:[^\W_]|['’])+")
_SURFACE_PIECE = re.compile(r"(?:[^\W_]|['’])+|(?:[^\w'’]|_)+")
MAX_QUOTE_CHARS = 300
"""A quote this long must close (``extract_quotes`` takes bodies of at most 400 characters)."""


_NOT_KEPT = re.compile(r"(?:[^\w']|_)+")
"""A run of characters :func:`canonical` turns into one space (neither a word character nor ``'``)."""


def canonical(text: str) -> str:
    """``text`` reduced per character the way ``normalize_quote`` reads it: word characters
    lowercased, ``’`` -> ``'``, everything else a space; runs of spaces collapsed to one."""
    return _NOT_KEPT.sub(" ", text.lower().replace("’", "'"))


def _word_case_ok(word: str, index: TranscriptIndex) -> bool:
    """``word`` (or the start of one) is written lowercase, Capitalised, or as the transcript
    writes it: no "gReaT", "mE" or "PLATFORM" (a model pushed off its words spells them so)."""
    return word[1:] == word[1:].lower() or word in index.surface_prefixes


def surface_context(body: str) -> str:
    """What :func:`surface_ok` reads of the quote so far: its last word and the gap after it
    ("" before the first word); computed once per step for all candidate tokens."""
    tail = _SURFACE_PIECE.findall(body)
    context = tail[-2:] if len(tail) >= 2 and not _SURFACE_WORD.fullmatch(tail[-1]) else tail[-1:]
    return "".join(context)


def surface_ok(index: TranscriptIndex, body: str, text: str, closing: bool,
               context: str | None = None) -> bool:
    """The quote's raw text stays clean when ``text`` follows ``body`` (the quote so far): no gap
    before the first word; between two words one plain space, after a punctuation mark only where
    the transcript has that mark after that word (``In, June`` is no quote of "in June"), or a
    hyphen where the transcript has one; each word in a plain case (:func:`_word_case_ok`); with
    ``closing`` (``text`` ends where the closing mark stands) the quote ends on a word, on a comma
    (the quote style "...," needs one) or on the transcript's own mark after that word. The
    canonical key (:func:`canonical`) cannot see any of this: punctuation and spacing normalise
    away and case is folded.

    Only the tail is read: ``body``'s last word (and the gap after it) and what ``text`` adds;
    ``context``: :func:`surface_context` of ``body`` when the caller has it already."""
    pieces = _SURFACE_PIECE.findall((context if context is not None else surface_context(body)) + text)
    previous: str | None = None
    for k, piece in enumerate(pieces):
        if _SURFACE_WORD.fullmatch(piece):
            if not _word_case_ok(piece, index):
                return False
            previous = piece.lower().replace("’", "'")  # canonical() of a word: nothing else to map
            continue
        if previous is None:
            return False  # a gap before the quote's first word
        spaced = piece.endswith(" ")
        mark = piece[:-1] if spaced else piece
        if " " in mark or (spaced and mark == "-"):
            return False  # two spaces, a space before a mark, or a spaced dash
        known = index.marks.get(previous, ())
        last = k == len(pieces) - 1
        if last and closing:
            if spaced or mark == "-" or (mark and mark != "," and mark not in known):
                return False
        elif last:  # a gap still being written: its mark may still grow ("." -> "...")
            if (mark and mark != "," and not any(m.startswith(mark) for m in known)
                    or spaced and mark and mark not in known):  # a comma of its own may only close
                return False
        elif mark != "-" and not spaced or (mark and mark not in known):
            return False  # between words: a space after the transcript's mark, or its hyphen
    return True


def _join(key: str, piece: str) -> str:
    """Canonical key + canonical piece (spaces collapse across the seam; a key never starts with one)."""
    if piece.startswith(" ") and (not key or key.endswith(" ")):
        piece = piece[1:]
    return key + piece


def quotable_spans(text: str, words: Sequence[dict[str, Any]] | None, min_probability: float) -> list[str]:
    """The parts of a transcript a quote may come from: runs of consecutive ``words`` whose
    ``probability`` is at least ``min_probability`` and that are not marked ``confirmed: False``
    (another transcriber did not hear them: ``emoreason.text.transcript_check``); any other word
    breaks the transcript there and is never quotable. ``text`` whole when no word is held back
    (threshold 0 and nothing unconfirmed) or the source gave no word probabilities (the model's
    own ASR: no words at all); [] when no word is quotable.

    ``words``: ``{"text", "probability", ...}`` in order, as ``WhisperDecoderASR`` returns them;
    their texts joined with spaces normalise like ``text`` (each word is its tokens' text).
    """
    if not words or any(w.get("probability") is None for w in words):
        return [text] if text else []
    checked = any(w.get("confirmed") is False for w in words)
    if min_probability <= 0 and not checked:
        return [text] if text else []
    spans: list[str] = []
    run: list[str] = []
    for w in words:
        if w["probability"] >= min_probability and w.get("confirmed") is not False:
            run.append(w["text"])
        elif run:
            spans.append(" ".join(run))
            run = []
    if run:
        spans.append(" ".join(run))
    return spans


class TranscriptIndex:
    """One transcript's normalised word-start suffixes, for prefix queries.

    ``transcript``: the text, or its quotable spans (:func:`quotable_spans`): a suffix then runs
    to the end of its span only, so no quote crosses from one span into the next."""

    def __init__(self, transcript: str | Sequence[str]):
        spans = [transcript] if isinstance(transcript, str) else list(transcript)
        suffixes: set[str] = set()
        self.surface_prefixes: set[str] = set()  # prefixes of the words as written ("iPh" of "iPhone")
        self.marks: dict[str, set[str]] = {}  # canonical word -> the marks written after it (",", "...", "-")
        for span in spans:
            words = normalize_quote(span).split()
            content = [i for i, w in enumerate(words) if w not in FUNCTION_WORDS]
            if not content:
                continue  # only function words: nothing worth quoting
            end = content[-1] + 1  # a suffix stops at its last content word: every path can close
            suffixes.update(" ".join(words[i:end]) + " " for i in range(end))
            pieces = _SURFACE_PIECE.findall(span)
            for k, piece in enumerate(pieces):
                if _SURFACE_WORD.fullmatch(piece):
                    self.surface_prefixes.update(piece[:n] for n in range(1, len(piece) + 1))
                    mark = pieces[k + 1].strip() if k + 1 < len(pieces) else ""
                    if mark:
                        self.marks.setdefault(canonical(piece), set()).add(mark)
        self.suffixes: list[str] = sorted(suffixes)
        self.forbidden: tuple[Any, list[int]] | None = None  # (table, ids): forbidden_openings' cache
        self.inside: dict[tuple[Any, str, str, tuple[int, ...]], list[int]] = {}
        """allowed_tokens' answers inside a quote, by (table, opening mark, quote so far, EOS ids):
        rows quoting this transcript (other rows of the clip, other models of an evaluation)
        mostly open their quotes on the same words, and the first steps of a quote weigh the most
        candidates."""

    def __bool__(self) -> bool:
        return bool(self.suffixes)

    def matches(self, key: str) -> list[str]:
        """The suffixes starting with ``key``."""
        i = bisect.bisect_left(self.suffixes, key)
        out = []
        while i < len(self.suffixes) and self.suffixes[i].startswith(key):
            out.append(self.suffixes[i])
            i += 1
        return out

    def is_prefix(self, key: str) -> bool:
        """``key`` (canonical) starts some word-start suffix: a valid quote so far."""
        i = bisect.bisect_left(self.suffixes, key)
        return i < len(self.suffixes) and self.suffixes[i].startswith(key)

    def can_continue(self, key: str) -> bool:
        """Some suffix holds more after ``key`` (canonical): a word may follow a gap ending here."""
        return any(len(s) > len(key) for s in self.matches(key))

    def can_close(self, key: str) -> bool:
        """A quote whose canonical text is ``key`` is a whole-word transcript span with a content
        word (not function words only: "the", "I will")."""
        body = key.strip()
        return (bool(body) and any(c != "'" for c in body) and has_content_word(body)
                and self.is_prefix(body + " "))


class TokenTable:
    """Decoded vocabulary of one tokenizer: plain tokens by canonical form, quote-mark tokens
    apart, and the tokens never allowed inside a quote."""

    def __init__(self, tokenizer: Any):
        n = len(tokenizer)
        special = set(tokenizer.all_special_ids)
        self.size = n
        self.texts: list[str] = decode_each(tokenizer, n)
        # leading non-word characters of each token (what it adds to the gap at the quote's end)
        self.lead = [len(t) - len(_LEADING_GAP.sub("", t, count=1)) for t in self.texts]
        self.quote_tokens: list[int] = []  # hold a quote mark: simulated one by one
        self.opening_tokens: list[int] = []  # hold an opening mark
        self._plain: list[int] = []  # may stand inside a quote: the tokens of :attr:`forms`
        for i, text in enumerate(self.texts):
            if i in special or not text:
                continue
            if any(c in QUOTE_CHARS for c in text):
                self.quote_tokens.append(i)
                if any(c in OPEN_TO_CLOSE for c in text):
                    self.opening_tokens.append(i)
                continue
            if "\ufffd" in text or "\n" in text or "\r" in text:
                continue  # partial UTF-8 / line break: never inside a quote
            self._plain.append(i)
        self._forms: dict[str, list[int]] | None = None
        self._longest_form = 0
        self._single: tuple[list[int], list[int]] | None = None

    def single_openers(self, after_word: bool) -> list[int]:
        """Tokens that would open a single-quoted span here (never allowed outside a quote); with
        ``after_word`` the text so far ends with a word character or ``'``, so a token's leading
        straight ``'`` is an apostrophe (``don't``), not an opening."""
        if self._single is None:
            anywhere, inner = [], []
            for i, text in enumerate(self.texts):
                if "'" not in text and "‘" not in text:
                    continue
                hits = [m.start() for m in _SINGLE_OPENING.finditer(text)]
                if hits:
                    anywhere.append(i)
                    if any(k > 0 or text[0] == "‘" for k in hits):
                        inner.append(i)
            self._single = (anywhere, inner)
        return self._single[1] if after_word else self._single[0]

    @property
    def forms(self) -> dict[str, list[int]]:
        """Plain tokens by canonical form (the ids of the tokens that have it). Built on the first
        quote a model opens (answers without quotes never need it): one dict entry per token, which
        is ~10x faster to build than a character trie of the same forms (a cold ``analyze`` pays it)."""
        if self._forms is None:
            forms: dict[str, list[int]] = {}
            for i in self._plain:
                forms.setdefault(canonical(self.texts[i]), []).append(i)
            forms.pop("", None)  # a token with no canonical form adds nothing to a quote
            self._longest_form = max(map(len, forms), default=0)
            self._forms = forms
        return self._forms

    def continuations(self, index: TranscriptIndex, key: str) -> set[int]:
        """Plain tokens that keep the quote (canonical ``key``) a valid transcript prefix: those whose
        form is a prefix of what follows ``key`` in one of its matching suffixes, and, where the key
        is empty or ends in a space, those whose form is a space and such a prefix (the token's
        leading space collapses into the key's)."""
        allowed: set[int] = set()
        forms = self.forms
        longest = self._longest_form
        spaced = not key or key.endswith(" ")
        for suffix in index.matches(key):
            rest = suffix[len(key):]
            for k in range(1, min(len(rest), longest) + 1):
                allowed.update(forms.get(rest[:k], ()))
            if spaced:
                for k in range(0, min(len(rest), longest - 1) + 1):
                    allowed.update(forms.get(" " + rest[:k], ()))
        return allowed


def decode_each(tokenizer: Any, n: int) -> list[str]:
    """Every id in ``range(n)`` decoded alone, as ``tokenizer.decode([i])`` gives it (special
    tokens kept). A fast tokenizer decodes the batch in its Rust backend (16x faster than
    ``batch_decode``'s per-row Python for SmolLM2's 49k ids: ~0.07 s instead of ~1.1 s); when
    ``decode`` would also clean up spaces, or there is no backend, ``batch_decode`` does it."""
    ids = [[i] for i in range(n)]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return list(backend.decode_batch(ids, skip_special_tokens=False))
    return tokenizer.batch_decode(ids, skip_special_tokens=False)


_TABLES: "weakref.WeakKeyDictionary[Any, TokenTable]" = weakref.WeakKeyDictionary()


def token_table(tokenizer: Any) -> TokenTable:
    """The tokenizer's :class:`TokenTable`, built once (a batch decode of the vocabulary)."""
    table = _TABLES.get(tokenizer)
    if table is None:
        table = _TABLES[tokenizer] = TokenTable(tokenizer)
    return table


def open_quote(text: str) -> tuple[str, str] | None:
    """(opening mark, text after it) of the quotation still open at the end of ``text``; None
    when no quote is open."""
    opener, start = None, 0
    for i, c in enumerate(text):
        if opener is None and c in OPEN_TO_CLOSE:
            opener, start = c, i + 1
        elif opener is not None and c == OPEN_TO_CLOSE[opener]:
            opener = None
    return None if opener is None else (opener, text[start:])


def step(state: tuple[str, str] | None, text: str, index: TranscriptIndex) -> tuple[str, str] | None | bool:
    """Feed ``text`` (one token's) to a row in ``state`` (None: outside, or (opener, canonical key)).

    Returns the new state, or False when the text breaks the constraint somewhere."""
    closed = False  # a quote closed inside this token: the rest may not start another (',"'' etc.)
    for c in text:
        if state is None:
            if closed and (c in QUOTE_CHARS or c in "'’"):
                return False
            if c in OPEN_TO_CLOSE:
                if not index:
                    return False
                state = (c, "")
            continue
        opener, key = state
        if c == OPEN_TO_CLOSE[opener]:
            if not index.can_close(key):
                return False
            state, closed = None, True
        elif c in QUOTE_CHARS or c in "\n\r\ufffd":
            return False
        else:
            key = _join(key, canonical(c))
            if not index.is_prefix(key):
                return False
            state = (opener, key)
    return state


def _gap_leads_nowhere(index: TranscriptIndex, written: str) -> bool:
    """``written`` (the quote so far with a candidate token) ends in a gap after which the quote
    could neither continue nor close: a space or a hyphen (they need a next word) where the span
    has no next word, or a mark that is not the transcript's own there (only a comma, and
    :func:`surface_ok` lets such a comma only close) where the quote may not close (no content
    word yet: "In,")."""
    gap = _TRAILING_GAP.search(written)
    if not gap:
        return False
    key = canonical(written).lstrip(" ")
    if " " in gap.group() or "-" in gap.group():
        return not index.can_continue(key)
    before = _SURFACE_WORD.findall(written[:gap.start()])
    known = index.marks.get(canonical(before[-1]), ()) if before else ()
    if any(m.startswith(gap.group()) for m in known):
        return False  # the transcript's own mark: the quote goes on after it, or closes
    return not index.can_close(key)


def forbidden_openings(table: TokenTable, index: TranscriptIndex) -> list[int]:
    """Tokens holding an opening mark that lead nowhere for this transcript (all of them without
    one); the same at every step outside a quote, so cached on the index."""
    if index.forbidden is None or index.forbidden[0] is not table:
        index.forbidden = (table, [i for i in table.opening_tokens if not _opening_ok(table.texts[i], index)])
    return index.forbidden[1]


def _opening_ok(text: str, index: TranscriptIndex) -> bool:
    """A token that opens a quote is allowed when what it writes keeps the constraint and, for the
    part inside the quote, the surface rules (:func:`surface_ok`)."""
    if step(None, text, index) is False:
        return False
    state = open_quote(text)
    if state is None:  # opens and closes inside the token: step checked the canonical span
        return True
    return surface_ok(index, "", state[1], closing=False)


def allowed_tokens(table: TokenTable, index: TranscriptIndex, text: str, eos_ids: Sequence[int]) -> tuple[bool, list[int]]:
    """What one row may generate next, given its generated ``text`` so far.

    Returns (inside, ids): outside a quote ``ids`` are the *forbidden* tokens (opening marks that
    lead nowhere), inside a quote the *allowed* ones (never empty: EOS at worst). Answers inside a
    quote are kept on ``index`` (:attr:`TranscriptIndex.inside`) and handed out again: read them,
    do not change them."""
    state = open_quote(text)
    if state is None:
        after_word = bool(text) and (text[-1] == "'" or bool(re.match(r"\w", text[-1])))
        return False, forbidden_openings(table, index) + table.single_openers(after_word)
    opener, body = state
    memo_key = (table, opener, body, tuple(eos_ids))
    found = index.inside.get(memo_key)
    if found is None:
        found = _allowed_inside(table, index, opener, body, eos_ids)
        if len(index.inside) >= MEMO_ENTRIES:
            index.inside.clear()
        index.inside[memo_key] = found
    return True, found


def _allowed_inside(table: TokenTable, index: TranscriptIndex, opener: str, body: str,
                    eos_ids: Sequence[int]) -> list[int]:
    """:func:`allowed_tokens` inside a quote opened by ``opener`` whose text so far is ``body``."""
    key = canonical(body).lstrip(" ")
    allowed: list[int] = []
    context = surface_context(body)
    if len(body) < MAX_QUOTE_CHARS:
        allowed = sorted(table.continuations(index, key))
        gap = _TRAILING_GAP.search(body)
        if gap:
            room = MAX_GAP - len(gap.group())
            allowed = [i for i in allowed if table.lead[i] <= room]
        allowed = [i for i in allowed if surface_ok(index, body, table.texts[i], closing=False, context=context)
                   and not _gap_leads_nowhere(index, body + table.texts[i])]
    closer = OPEN_TO_CLOSE[opener]
    allowed += [i for i in table.quote_tokens
                if step((opener, key), table.texts[i], index) is not False
                and surface_ok(index, body, table.texts[i].split(closer, 1)[0], closing=closer in table.texts[i],
                               context=context)]
    if not allowed:
        allowed = list(eos_ids)  # stuck mid-word: end rather than close an ungrounded quote
    return allowed


MEMO_ENTRIES = 4096
"""Most answers one transcript's index keeps (:attr:`TranscriptIndex.inside`); then it starts over."""
INDEX_ENTRIES = 512
"""Most transcripts whose indexes :func:`transcript_index` keeps for reuse."""
_INDEXES: "dict[str | tuple[str, ...], TranscriptIndex]" = {}
_INDEXES_LOCK = threading.Lock()  # engines in other threads may build constraints at the same time


def transcript_index(transcript: str | Sequence[str] | None) -> TranscriptIndex:
    """The :class:`TranscriptIndex` of ``transcript`` (text or quotable spans; None = ""), shared by
    every constraint over the same transcript in this process, with what it has answered so far."""
    key: str | tuple[str, ...] = transcript if isinstance(transcript, str) else tuple(transcript or ())
    with _INDEXES_LOCK:
        index = _INDEXES.pop(key, None)
        if index is None:
            index = TranscriptIndex(key)
            if len(_INDEXES) >= INDEX_ENTRIES:
                del _INDEXES[next(iter(_INDEXES))]  # the least recently used
        _INDEXES[key] = index  # (re)inserted last: most recently used
        return index


class QuoteConstraint:
    """``LogitsProcessor``: one transcript per batch row ("" or [] = no transcript: no quotes there).

    Args:
        tokenizer: the LLM's tokenizer (decodes the rows' generated ids).
        transcripts: (B,) one per generated row: its text, or its quotable spans
            (:func:`quotable_spans`; a quote stays inside one span).
        eos_ids: the ids that end generation (the fallback when nothing else is allowed).
    """

    def __init__(self, tokenizer: Any, transcripts: Sequence[str | Sequence[str]], eos_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.table = token_table(tokenizer)
        self.indexes = [transcript_index(t) for t in transcripts]  # None -> "" (no transcript)
        self.eos_ids = list(eos_ids)
        self.start: int | None = None  # prompt length in input_ids (0 with inputs_embeds only)
        self._last: list[tuple[str, bool, list[int]] | None] = [None] * len(self.indexes)
        """Per row, the text of the previous step and what it allowed: a row that has finished
        (padding after its EOS) keeps its text, and in a batch of 16 many rows wait for the longest."""

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """input_ids (B, L) long, scores (B, V) float -> scores with disallowed tokens at -inf."""
        import torch

        if self.start is None:
            self.start = input_ids.shape[1]
        generated = input_ids[:, self.start:].tolist()
        mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)  # True = forbidden
        for row, (ids, index) in enumerate(zip(generated, self.indexes)):
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            last = self._last[row]
            if last is not None and last[0] == text:
                inside, ids_ = last[1], last[2]
            else:
                inside, ids_ = allowed_tokens(self.table, index, text, self.eos_ids)
                self._last[row] = (text, inside, ids_)
            if inside:
                mask[row] = True
                mask[row, ids_] = False
            elif ids_:
                mask[row, ids_] = True
        return scores.masked_fill(mask, float("-inf"))
