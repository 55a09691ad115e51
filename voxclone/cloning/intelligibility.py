"""The trained voice's intelligibility check: it must be understood about as well as the voice it started from.

The decoder adapter a build fits on the speaker's recordings carries their accent into the language the
voice speaks. fr-june built from 3 minutes of French spoke English at 3.8% WER (Whisper-base, the 585
words of `bench clone`'s 48 sentences) against 1.4% for her stock voice; with the adapter left out, 0.9%.
The accent sits in the adapter's first part, the offsets (and low-rank weights) of the decoder's
``encode``/``decode`` blocks, which turn phonemes into sound; the timbre mostly in the generator's offsets.
So after fitting, the start (instant) voice and the trained one speak `CHECK_SENTENCES` sentences that
nothing else uses (not fitted, selected or benchmarked on); while the trained voice misses more than
`TOLERANCE` more of the words, it steps down `ADAPTERS`: the whole adapter, the fit's earlier state (style
and whole adapter as they were at about 60% of the steps, before most of the accent came in), the
generator's part alone, the whole adapter halved. The fit keeps time for two checks of the trained voice;
when no time is left for the next one, the generator's part is kept unchecked (never the earlier state,
which may still carry the accent): it passed in all nine builds where it was checked, and keeps more of
the timbre than the halved adapter. Keeping time
for one check only let the fit run ~60 s longer and take in more accent: fr-june's whole adapter then
failed (13 words against 7; it passed after the shorter fit) and her voice ended further from her
(README, Training). The adapter is never dropped: the style was fitted together with it, and without it
is far from the speaker (an it-carlo build from 20 s that lost it closed 28% / 34% of the
stock-to-speaker gap, Resemblyzer / d-vector, where builds with it close about 98% / 85%).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHECK_SENTENCES = 24
# The "stock + 2 points" target. On 24 short sentences (about 280 words) two equally clear voices differ
# by about 1.4 points by chance (one sd, errors counted as Poisson); accents cost 3.6-4.3 points.
TOLERANCE = 0.02
# The parts of the decoder adapter kept, tried in turn while there is time to check them; the one after a
# failed check is kept unchecked when there is not, the last one when it fails too. On the 24 check
# sentences fr-june's 3-minute voice missed 17 of 279 words whole, 6 with the generator's part alone (the
# start voice 7), at Resemblyzer / d-vector similarity 0.908 / 0.825 whole, 0.894 / 0.821 generator alone,
# 6 at 0.870 / 0.718 halved (the generator's part halved: 6 at 0.852 / 0.703).
ADAPTERS = ("whole", "earlier", "generator", "half")
UNCHECKED = ("generator", "half")  # the parts that may be kept without a check when time runs out


def check_sentences(lang: str) -> list[str]:
    """Up to `CHECK_SENTENCES` short recording prompts of `lang` ([] without prompts): from the second half of
    those that no voice is fitted or selected on (`bench clone` scores on the first ones)."""
    from .build import texts_for
    from .texts import EVAL, prompts

    try:
        lines = prompts(lang)
    except ValueError:
        return []
    used = set(EVAL) | {t for pool in texts_for(lang) for t in pool}
    unused = [t for t in lines if t not in used]
    short = [t for t in unused[len(unused) // 2 :] if 8 <= len(t.split()) <= 14]
    return short[-CHECK_SENTENCES:]


@dataclass
class Check:
    """Word errors of one voice on the check sentences."""

    errors: int
    words: int
    seconds: float

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)


def word_errors(speak: Callable[[str], object], texts: list[str], asr, language: str) -> Check:
    """Errors when `asr` hears `speak(text)` (an :class:`~voxclone.audio.Audio`) for each text."""
    from .evaluate import sentence_errors

    t0 = time.perf_counter()
    counts = sentence_errors(asr, texts, [speak(t) for t in texts], language)
    return Check(sum(e for e, _ in counts), sum(n for _, n in counts), time.perf_counter() - t0)


def choose_adapter(
    start: Check,
    check: Callable[[str], Check],
    deadline: float,
    say: Callable[[str], None] = lambda m: None,
    parts: tuple[str, ...] = ADAPTERS,
) -> tuple[str, list[dict]]:
    """The first of `parts` whose voice is within `TOLERANCE` of `start`, checking each with `check(part)`.
    The first part is always checked, each later one only while `deadline` (a perf_counter time) leaves room
    for a check as long as the start's; without room the next of `UNCHECKED` is kept unchecked, and the
    last part is kept when it fails too. Returns the part kept with a log of every check."""
    log = [_entry(None, start)]
    for i, part in enumerate(parts):
        if log[1:] and time.perf_counter() + start.seconds > deadline:
            safe = next((p for p in parts[i:] if p in UNCHECKED), parts[-1])
            say(f"no time left to check the decoder adapter's {safe} part: keeping it unchecked")
            return safe, log
        c = check(part)
        log.append(_entry(part, c))
        if c.wer <= start.wer + TOLERANCE or part == parts[-1]:
            return part, log
        say(f"decoder adapter, {part}: {100 * c.wer:.1f}% of words missed, the start voice {100 * start.wer:.1f}%")
    raise AssertionError("unreachable")


def _entry(part: str | None, c: Check) -> dict:
    return {"adapter": part, "errors": c.errors, "words": c.words, "seconds": round(c.seconds, 1)}


def kept(decoder: np.ndarray | None, part: str, generator: tuple[int, int]) -> np.ndarray | None:
    """The adapter with only `part` (one of `ADAPTERS`) of it kept. `generator`: the span of the generator's
    offsets in the adapter vector. For "earlier", `decoder` is the earlier state's, kept whole."""
    if part not in ADAPTERS:
        raise ValueError(f"unknown decoder adapter part {part!r}: one of {', '.join(ADAPTERS)}")
    if decoder is None or part in ("whole", "earlier"):
        return decoder
    if part == "half":
        return (decoder * 0.5).astype(decoder.dtype)
    out = np.zeros_like(decoder)
    a, b = generator
    out[a:b] = decoder[a:b]
    return out
