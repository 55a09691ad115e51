"""The trained voice's intelligibility check: it must be understood about as well as the voice it started from.

The decoder adapter a build fits on the speaker's recordings carries their accent into the language the
voice speaks. fr-june built from 3 minutes of French spoke English at 3.8% WER (Whisper-base, the 585
words of `bench clone`'s 48 sentences) against 1.4% for her stock voice; with the adapter left out, 0.9%.
So after fitting, the start (instant) voice and the trained one speak `CHECK_SENTENCES` sentences that
nothing else uses (not fitted, selected or benchmarked on); while the trained voice misses more than
`TOLERANCE` more of the words, its decoder adapter is halved, and at last dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHECK_SENTENCES = 24
TOLERANCE = 0.015  # under the "stock + 2 points" target: 24 short sentences are about 270 words
SCALES = (1.0, 0.5, 0.0)  # the decoder adapter's scales tried in turn; the last is kept unchecked if need be


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


def choose_decoder_scale(
    start: Check,
    check: Callable[[float], Check],
    deadline: float,
    say: Callable[[str], None] = lambda m: None,
) -> tuple[float, list[dict]]:
    """The first of `SCALES` whose voice is within `TOLERANCE` of `start` (checking each with `check(scale)`
    while `deadline`, a perf_counter time, leaves room for one); the last scale when none is.
    Returns it with a log of every check."""
    log = [_entry(None, start)]
    for scale in SCALES[:-1]:
        if log[1:] and time.perf_counter() + start.seconds > deadline:
            say("no time left to check a smaller decoder adapter: leaving it out")
            break
        c = check(scale)
        log.append(_entry(scale, c))
        if c.wer <= start.wer + TOLERANCE:
            return scale, log
        say(f"decoder adapter x{scale:g}: {100 * c.wer:.1f}% of words missed, the start voice {100 * start.wer:.1f}%")
    return SCALES[-1], log


def _entry(scale: float | None, c: Check) -> dict:
    return {"scale": scale, "errors": c.errors, "words": c.words, "seconds": round(c.seconds, 1)}


def scaled(decoder: np.ndarray | None, scale: float) -> np.ndarray | None:
    """The adapter at `scale` (None at 0: the voice then renders through the graph as stock voices do)."""
    if decoder is None or scale == 0:
        return None
    return (decoder * scale).astype(np.float32)
