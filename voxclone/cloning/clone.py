"""Clone a voice end to end: check consent, collect, build, store in the library."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from ..audio import read_audio
from ..errors import AudioInputError, VoiceExistsError, VoxcloneError
from ..text.g2p import LANGUAGES, resolve_language
from .build import Built, VoiceBuilder, target_from
from .collect import CLIP_RATE, Collection, collect
from .library import VoiceLibrary, check_name

QUALITIES = ("instant", "best")
BUILDER_VERSION = 1


class ConsentError(VoxcloneError, ValueError):
    """No consent recording and no waiver were given, or the consent recording is unusable."""


def consent_record(consent: str | Path | None, waiver: str | None) -> tuple[dict, Path | None]:
    """What is known about consent before anything is built (verification comes with the safeguards)."""
    if consent is None and not (waiver or "").strip():
        raise ConsentError(
            "cloning needs the speaker's consent: give --consent RECORDING (the speaker reading the "
            "statement from `voxclone consent NAME`) or, for estates and research, --consent-waiver REASON"
        )
    if consent is not None and (waiver or "").strip():
        raise ConsentError("give either --consent or --consent-waiver, not both")
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if consent is None:
        return {"kind": "waiver", "reason": waiver.strip(), "recorded": now}, None
    path = Path(consent)
    samples, rate = read_audio(path)  # a consent file must at least be audio
    if len(samples) < rate:
        raise ConsentError(f"consent recording {path} is shorter than one second")
    return {
        "kind": "recording",
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "seconds": round(len(samples) / rate, 2),
        "verified": False,
        "note": "stored; words and voice are checked once consent verification ships",
        "recorded": now,
    }, path


def speaking_language(requested: str | None, heard: str) -> str:
    """The voice's default language: as asked, else what Whisper heard if Kokoro speaks it, else en-us."""
    if requested:
        return resolve_language(requested).code
    code = {"en": "en-us", "pt": "pt-br"}.get(heard, heard)
    if code in LANGUAGES and code not in ("zh",):
        return code
    return "en-us"


def clone(
    name: str,
    inputs: Iterable[str | Path],
    *,
    consent: str | Path | None = None,
    waiver: str | None = None,
    quality: str = "instant",
    lang: str | None = None,
    seed: int = 0,
    budget_s: float = 240.0,
    max_evals: int | None = None,
    tts=None,
    library: VoiceLibrary | None = None,
    progress: Callable[[str], None] | None = None,
    fit_progress: Callable[[dict], None] | None = None,
) -> dict:
    """Build voice ``name`` from recordings and store it; return its ``voice.json`` record.

    Everything is checked before anything is stored; on any error the library is unchanged.
    """
    from ..api import Voxclone

    say = progress or (lambda msg: None)
    if quality not in QUALITIES:
        raise ValueError(f"quality {quality!r}: choose one of {', '.join(QUALITIES)}")
    tts = tts or Voxclone()
    library = library or VoiceLibrary()
    stock = frozenset(tts._stock())
    check_name(name, stock)
    if library.exists(name):
        raise VoiceExistsError(f"a voice named {name!r} already exists; pick another name or delete it first")
    if lang is not None:
        resolve_language(lang)  # an unknown language fails before any work
    record_consent, consent_path = consent_record(consent, waiver)
    paths = list(inputs)
    if consent_path is not None and any(Path(p).resolve() == consent_path.resolve() for p in paths):
        raise ConsentError("the consent recording must not also be a training recording")

    col: Collection = collect(paths, language=None, progress=say)
    if not col.enroll:
        raise AudioInputError("no clips left for enrolment after holding some out")
    speak_lang = speaking_language(lang, col.language)
    say(f"building ({quality}) for {speak_lang}")
    builder = VoiceBuilder(tts, speak_lang)
    target = target_from(col, tts._g2p_for(speak_lang) if col.language.startswith(speak_lang[:2]) else None)
    built: Built = builder.instant(target)
    instant_similarity = built.similarity
    if quality == "best":
        built = builder.best(target, built, seed=seed, budget_s=budget_s, max_evals=max_evals, progress=fit_progress)
    record = {
        "name": name,
        "language": speak_lang,
        "recorded_language": col.language,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "kind": "cloned",
        "quality": quality,
        "speed": round(built.speed, 4),
        "pitch": round(built.pitch, 3),
        "base": built.base,
        "similarity": {"instant": round(instant_similarity, 4), "final": round(built.similarity, 4)},
        "build": {
            "seconds": round(built.seconds, 1),
            "evaluations": built.evaluations,
            "seed": seed,
            "stopped": built.stopped,
            "builder_version": BUILDER_VERSION,
        },
        "consent": record_consent,
        "sources": col.sources,
        "clean_speech_s": col.report["clean_speech_s"],
        "target": {
            "f0_hz": round(target.f0_hz, 1),
            "phonemes_per_s": round(target.rate, 2),
            "channel_hz": target.channel_hz,
        },
    }
    clips = [
        (c.id, c.samples, CLIP_RATE, {"source": c.source, "text": c.text, "use": c.use, "seconds": c.duration})
        for c in col.clips
        if c.use in ("enroll", "heldout")
    ]
    library.create(name, record, built.pack, col.embedding, col.report, clips, built.log, consent_path)
    say(f"stored voice {name!r}")
    return record
