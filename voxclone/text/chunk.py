"""Split long text into pieces the model can speak, without losing or repeating any of it.

Paragraphs (blank lines) -> sentences -> clauses -> words, going finer only when a piece
exceeds the model's 510-phoneme limit. Short neighbouring sentences are grouped so the model
gets natural context. Each piece says how long a pause should follow it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

MAX_PHONEMES = 510
GROUP_PHONEMES = 240  # sentences are grouped up to this size
FIRST_PHONEMES = 30  # a streamed first piece this short arrives fast (~1.5 s of speech)
RAMP_FROM = 18  # after a fast start the second piece may be twice this (a busy server cuts pieces near 36 anyway)

PAUSE_PARAGRAPH = 0.75
PAUSE_SENTENCE = 0.3
PAUSE_CLAUSE = 0.15
PAUSE_WORD = 0.04

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|(?<=[。！？])\s*")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")
# A phrase may start with these (so a break before them sounds natural) ...
_WEAK_STARTS = {
    "and",
    "but",
    "or",
    "so",
    "because",
    "which",
    "that",
    "who",
    "whose",
    "when",
    "while",
    "where",
    "if",
    "although",
    "though",
    "with",
    "without",
    "before",
    "after",
    "until",
    "since",
    "as",
    "for",
    "to",
    "of",
    "in",
    "on",
    "at",
    "into",
    "from",
    "by",
    "about",
    "over",
    "under",
    "through",
    "between",
    "during",
    "against",
    "across",
    "around",
    "toward",
    "towards",
}
# ... and should not end with these (they lean on the next word).
_NO_END = _WEAK_STARTS | {
    "the",
    "a",
    "an",
    "their",
    "his",
    "her",
    "its",
    "our",
    "my",
    "your",
    "this",
    "these",
    "those",
    "some",
    "any",
    "every",
    "each",
    "no",
    "very",
    "more",
    "most",
    "own",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "not",
    "i",
    "we",
    "you",
    "they",
    "he",
    "she",
    "it",
}


@dataclass
class Piece:
    text: str
    phonemes: str
    pause: float  # seconds of silence after this piece, at speed 1.0


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def clauses(sentence: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_END.split(sentence) if c.strip()]


def _fit(text: str, phonemize: Callable[[str], str], limit: int) -> Iterator[tuple[str, str, float]]:
    """Pieces of one sentence, each at most ``limit`` phonemes, with the pause that follows each."""
    ps = phonemize(text)
    if len(ps) <= limit:
        yield text, ps, PAUSE_SENTENCE
        return
    parts = clauses(text)
    if len(parts) > 1:
        out = list(_group(parts, phonemize, limit, PAUSE_CLAUSE))
    else:
        out = list(_split_words(text, phonemize, limit))
    for i, (t, p, pause) in enumerate(out):
        yield t, p, PAUSE_SENTENCE if i == len(out) - 1 else pause


def _group(parts: list[str], phonemize, limit: int, pause: float) -> Iterator[tuple[str, str, float]]:
    """Greedily join clauses up to the limit; split any clause that alone is too long."""
    cur_text, cur_ps = "", ""
    for part in parts:
        ps = phonemize(part)
        if len(ps) > limit:
            if cur_text:
                yield cur_text, cur_ps, pause
                cur_text, cur_ps = "", ""
            yield from _split_words(part, phonemize, limit)
            continue
        joined = f"{cur_ps} {ps}" if cur_ps else ps
        if cur_text and len(joined) > limit:
            yield cur_text, cur_ps, pause
            cur_text, cur_ps = part, ps
        else:
            cur_text, cur_ps = (f"{cur_text} {part}" if cur_text else part), joined
    if cur_text:
        yield cur_text, cur_ps, pause


def _split_words(text: str, phonemize, limit: int) -> Iterator[tuple[str, str, float]]:
    words = text.split()
    lo = 0
    while lo < len(words):
        # largest prefix that fits (binary search keeps phonemisation calls logarithmic)
        a, b = lo + 1, len(words)
        while a < b:
            mid = (a + b + 1) // 2
            if len(phonemize(" ".join(words[lo:mid]))) <= limit:
                a = mid
            else:
                b = mid - 1
        piece = " ".join(words[lo:a])
        ps = phonemize(piece)
        # a single "word" longer than the model's window is spoken in slices, none dropped
        for i in range(0, len(ps), limit):
            yield (piece if i == 0 else ""), ps[i : i + limit], PAUSE_WORD
        lo = a


def _first_phrase(text: str, phonemize, target: int) -> tuple[str, str] | None:
    """A short leading phrase of a long sentence (for a fast first streamed chunk), or None.

    Prefers the first clause; else the last break before a conjunction or preposition that
    keeps the phrase near ``target`` phonemes; else the word boundary nearest ``target``.
    """
    parts = clauses(text)
    if len(parts) > 1:
        ps = phonemize(parts[0])
        if 8 <= len(ps) <= 1.3 * target:
            return parts[0], ps
    words = text.split()
    if len(words) < 5:
        return None
    weak, nearest = None, None
    for i in range(2, len(words) - 2):
        if words[i - 1].lower().strip(",.;:") in _NO_END:
            continue
        head = " ".join(words[:i])
        ps = phonemize(head)
        if len(ps) > 1.3 * target:
            # even the shortest phrase is longer than asked: it still beats the whole sentence
            nearest = nearest or (head, ps)
            break
        if words[i].lower().strip(",.;:") in _WEAK_STARTS and len(ps) >= 10:
            weak = (head, ps)
        nearest = (head, ps)
    return weak or nearest


def plan(
    text: str,
    phonemize: Callable[[str], str],
    limit: int = MAX_PHONEMES,
    group: int = GROUP_PHONEMES,
    fast_start: bool = False,
    first_phonemes: int = FIRST_PHONEMES,
) -> Iterator[Piece]:
    """Pieces of ``text`` in order; concatenating their texts gives back every word once.

    With ``fast_start`` the first sentence is never grouped with others, and a long one is cut
    after a short leading phrase (near ``first_phonemes``), so the first piece is quick to synthesise.
    """
    first = fast_start
    for para in paragraphs(text):
        sents = sentences(para)
        pieces: list[tuple[str, str, float]] = []
        for i, sent in enumerate(sents):
            if first:
                first = False
                head = None
                if len(phonemize(sent)) > first_phonemes * 1.4:
                    head = _first_phrase(sent, phonemize, first_phonemes)
                if head:
                    yield Piece(head[0], head[1], PAUSE_CLAUSE if head[0][-1] in ",;:—" else PAUSE_WORD)
                    sent = sent[len(head[0]) :].strip()
                else:
                    last = PAUSE_PARAGRAPH if i == len(sents) - 1 else PAUSE_SENTENCE
                    yield from _merge(list(_fit(sent, phonemize, limit)), 0, limit, last_pause=last)
                    continue
            pieces.extend(_fit(sent, phonemize, limit))
        yield from _merge(pieces, group, limit, last_pause=PAUSE_PARAGRAPH)


def _merge(pieces: list[tuple[str, str, float]], group: int, limit: int, last_pause: float) -> Iterator[Piece]:
    """Join whole sentences up to ``group`` phonemes (the model then sets their pauses itself)."""
    cur: Piece | None = None
    for t, p, pause in pieces:
        if (
            cur is not None
            and cur.pause == PAUSE_SENTENCE
            and pause == PAUSE_SENTENCE
            and len(cur.phonemes) + 1 + len(p) <= min(group, limit)
        ):
            cur = Piece(f"{cur.text} {t}", f"{cur.phonemes} {p}", pause)
            continue
        if cur is not None:
            yield cur
        cur = Piece(t, p, pause)
    if cur is not None:
        cur.pause = max(cur.pause, last_pause)
        yield cur


def split(piece: Piece, phonemize: Callable[[str], str], limit: int) -> Iterator[Piece]:
    """``piece`` in parts of about ``limit`` phonemes or fewer: whole sentences first, then phrases.

    A busy server synthesises one piece at a time, so a newcomer's first audio waits for the piece
    being synthesised: shorter pieces bound that wait. Parts are balanced in length and cut where
    speech pauses naturally (sentence ends, clauses, before a conjunction or preposition).
    """
    if len(piece.phonemes) <= limit:
        yield piece
        return
    sents = sentences(piece.text)
    if len(sents) > 1:
        parts = [p for sent in sents for p in _fit(sent, phonemize, MAX_PHONEMES)]
        for part in _merge(parts, limit, MAX_PHONEMES, piece.pause):
            yield from split(part, phonemize, limit)
        return
    text, ps = piece.text, piece.phonemes
    while len(ps) > limit:
        head = _first_phrase(text, phonemize, len(ps) // -(-len(ps) // limit))
        rest = text[len(head[0]) :].strip() if head and text.startswith(head[0]) else ""
        if not rest:
            break
        yield Piece(head[0], head[1], PAUSE_CLAUSE if head[0][-1] in ",;:—" else PAUSE_WORD)
        text, ps = rest, phonemize(rest)
    yield Piece(text, ps, piece.pause)


def ramp(pieces: Iterable[Piece], phonemize: Callable[[str], str], first: int) -> Iterator[Piece]:
    """``pieces`` after a fast start, each cut to at most about twice everything before it (at least
    ``first``). A piece takes about a quarter of its duration to synthesise on 2 VNNI cores, so it is
    ready before what was sent before it has played, and a real-time listener hears no gap (up to a
    real-time factor of about 1/3). Without it the second piece is a group of sentences up to
    ``GROUP_PHONEMES``: ~3 s to synthesise after a ~1.5 s first piece. Sizes soon reach the plan's own."""
    sent = 0
    for piece in pieces:
        while True:
            limit = 2 * max(sent, first)
            if len(piece.phonemes) <= 1.3 * limit:
                break
            head, *rest = split(piece, phonemize, limit)
            if not rest:
                break
            yield head
            sent += len(head.phonemes)
            piece = Piece(" ".join(p.text for p in rest), " ".join(p.phonemes for p in rest), rest[-1].pause)
        yield piece
        sent += len(piece.phonemes)


def words_of(pieces: Iterable[Piece]) -> list[str]:
    """All words of the pieces, in order (for checking nothing was dropped)."""
    return [w for piece in pieces for w in piece.text.split()]
