"""Recorded consent: a statement with a one-time code, read aloud by the speaker, then verified.

A recording is accepted when (a) Whisper hears the code words exactly and the rest of the statement
closely, (b) the voice is the enrolled speaker's (speaker-embedding similarity above a threshold
calibrated on real speech, see ``voxclone bench consent``), and (c) it carries no voxclone
watermark: a synthetic consent is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VoxcloneError

CODE_WORDS = 4
VALID_DAYS = 7
MAX_STATEMENT_WER = 0.35  # of the words outside the code: Whisper-base mishears some names and dates
# Resemblyzer cosine between the consent recording and the enrolment centroid. `voxclone bench
# consent` on the six devdata speakers (8 s trials): genuine 0.844..0.97, impostors up to 0.802
# (two French women); 0.80 rejects no genuine trial and accepts ~0.3% of impostors.
SPEAKER_THRESHOLD = 0.80

# Short, concrete, unambiguous words that Whisper spells one way (no homophones, no numbers).
WORDS = """
apple anchor badger banjo basket beacon beaver bishop blanket bottle bridge bucket buffalo butter
cactus camel candle castle cherry chimney circus cobra coconut compass copper cotton cradle crayon
cricket crystal dolphin donkey dragon drum eagle elbow falcon feather fiddle forest fossil garlic
giraffe glacier granite guitar hammer harbor helmet honey igloo island jacket jaguar kettle kitten
ladder lantern lemon lizard lobster magnet mango marble meadow monkey needle octopus orchard oyster
paddle parrot pebble pencil penguin pepper pillow pirate planet pocket puppet pumpkin rabbit rocket
saddle shovel silver spider sponge squirrel statue summit tablet thimble thunder ticket tomato
tractor trumpet tulip turtle umbrella valley velvet volcano wagon walnut whistle window wizard
zipper
""".split()


class ConsentError(VoxcloneError, ValueError):
    """No valid consent: missing, expired, wrong words, another voice, or synthetic."""


@dataclass
class Statement:
    name: str
    purpose: str
    code: list[str]
    issued: str
    expires: str
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def text(self) -> str:
        day = dt.date.fromisoformat(self.issued[:10]).strftime("%B %d, %Y").replace(" 0", " ")
        return (
            f"I, {self.name}, agree that voxclone may create a synthetic copy of my voice "
            f"for {self.purpose}. Today is {day}. My one-time code is: {', '.join(self.code)}."
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.text}


@dataclass(frozen=True)
class Check:
    ok: bool
    reasons: list[str]
    transcript: str
    code_heard: bool
    statement_wer: float
    similarity: float | None
    watermark_confidence: float
    watermarked: bool

    def as_dict(self) -> dict:
        return {
            "verified": self.ok,
            "reasons": self.reasons,
            "transcript": self.transcript,
            "code_heard": self.code_heard,
            "statement_wer": round(self.statement_wer, 3),
            "speaker_similarity": None if self.similarity is None else round(self.similarity, 4),
            "watermark_confidence": round(self.watermark_confidence, 4),
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ConsentStore:
    """Pending statements, one per voice name, kept until used or expired (write-then-rename)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def issue(self, name: str, speaker: str | None = None, purpose: str = "my own use", rng=None) -> Statement:
        """A new statement for ``name`` (replacing any pending one); ``rng`` only for tests."""
        purpose = " ".join((purpose or "").split())
        if not purpose:
            raise ConsentError("the consent statement needs a purpose (e.g. 'voice banking')")
        if len(purpose) > 200:
            raise ConsentError("the purpose is longer than 200 characters")
        speaker = " ".join((speaker or name).split())
        now = _now()
        st = Statement(
            name=speaker,
            purpose=purpose,
            code=[(rng or secrets.SystemRandom()).choice(WORDS) for _ in range(CODE_WORDS)],
            issued=now.isoformat(timespec="seconds"),
            expires=(now + dt.timedelta(days=VALID_DAYS)).isoformat(timespec="seconds"),
        )
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(st), f)
        os.replace(tmp, self._path(name))
        return st

    def pending(self, name: str) -> Statement:
        p = self._path(name)
        if not p.is_file():
            raise ConsentError(
                f"no consent statement was issued for {name!r}: run `voxclone consent {name}` and have the "
                "speaker read it aloud"
            )
        st = Statement(**json.loads(p.read_text(encoding="utf-8")))
        if dt.datetime.fromisoformat(st.expires) < _now():
            raise ConsentError(f"the consent statement for {name!r} expired on {st.expires[:10]}; issue a new one")
        return st

    def consume(self, name: str) -> None:
        """A code is good for one voice only."""
        self._path(name).unlink(missing_ok=True)


def _words(text: str) -> list[str]:
    from ..transcribe import normalize_for_wer

    return normalize_for_wer(text).split()


def _code_heard(code: list[str], heard: list[str]) -> bool:
    """The code words, spelled exactly and in order, in the transcript. Whisper sometimes writes
    words read as a list run together ("mirrormonkey"), so the words are sought in the joined text."""
    joined, at = "".join(heard), 0
    for word in code:
        found = joined.find(word, at)
        if found < 0:
            return False
        at = found + len(word)
    return True


def check_recording(
    statement: Statement,
    samples: np.ndarray,
    rate: int,
    enrolment: np.ndarray | None,
    *,
    transcriber=None,
    encoder=None,
    watermarker=None,
    threshold: float = SPEAKER_THRESHOLD,
) -> Check:
    """Verify a consent recording against its statement and (when given) the enrolment embedding."""
    import jiwer

    from ..safeguards.watermark import shared as shared_watermarker
    from ..transcribe import Transcriber

    reasons = []
    if len(samples) < rate * 2:
        reasons.append("the consent recording is shorter than two seconds")
    wm = (watermarker or shared_watermarker()).detect(samples, rate)
    if wm.marked:
        reasons.append(
            f"the consent recording carries voxclone's watermark (confidence {wm.confidence:.2f}): "
            "synthetic speech cannot give consent"
        )
    transcript = (transcriber or Transcriber()).transcribe(samples, language="en", sample_rate=rate)
    heard = _words(transcript)
    code = [w.lower() for w in statement.code]
    code_ok = _code_heard(code, heard)
    if not code_ok:
        reasons.append(f"the one-time code words ({' '.join(code)}) were not heard; Whisper heard: {transcript!r}")
    expected = _words(statement.text)
    rest_ref = " ".join(w for w in expected if w not in code) or "-"
    rest_hyp = " ".join(w for w in heard if w not in code) or "<empty>"
    wer = float(jiwer.wer(rest_ref, rest_hyp))
    if wer > MAX_STATEMENT_WER:
        reasons.append(f"the statement was not read as written ({wer:.0%} of its words differ)")
    similarity = None
    if enrolment is not None:
        similarity = speaker_similarity(samples, rate, enrolment, encoder)
        if problem := voice_mismatch(similarity, threshold):
            reasons.append(problem)
    return Check(not reasons, reasons, transcript, code_ok, wer, similarity, wm.confidence, wm.marked)


def speaker_similarity(samples: np.ndarray, rate: int, enrolment: np.ndarray, encoder=None) -> float:
    from ..cloning.speaker import shared_encoder

    emb = (encoder or shared_encoder()).embed(samples, rate)
    return float(np.dot(emb, np.asarray(enrolment, np.float32)))


def voice_mismatch(similarity: float, threshold: float = SPEAKER_THRESHOLD) -> str | None:
    if similarity >= threshold:
        return None
    return (
        f"the consent voice does not match the recordings (similarity {similarity:.2f} < {threshold:.2f}): "
        "the speaker must read the statement themselves"
    )
