"""Clone a voice end to end: check consent, collect, build, store in the library."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..audio import read_audio
from ..engine.assets import sha256_file
from ..errors import AudioInputError, VoiceExistsError
from ..safeguards.consent import (
    ConsentError,
    check_recording,
    speaker_similarity,
    voice_mismatch,
)
from ..safeguards.protected import ProtectedVoiceError
from ..text.g2p import LANGUAGES, resolve_language
from .build import Built, VoiceBuilder, target_from
from .collect import CLIP_RATE, Collection, collect
from .library import VoiceLibrary, check_name

# best and train are one level (train was its name while it was new); search is the black-box CMA-ES fit
QUALITIES = ("instant", "best", "train", "search")
BUILDER_VERSION = 1
# the whole build (collecting, transcribing, aligning, fitting, scoring): best/train has 3 minutes of speech
# become a voice within 15 minutes on 2 cores; search, the black-box fit, gains little after 5
TRAIN_BUDGET_S = 840.0
SEARCH_BUDGET_S = 280.0
SCORING_S = 12.0  # kept back from a budget for scoring the result and storing it
MIN_FIT_S = 20.0  # less than this left for fitting: a few steps would only add noise to the instant voice


def default_budget(quality: str) -> float:
    """Seconds for a whole build at this quality (instant builds take what they take)."""
    return SEARCH_BUDGET_S if quality == "search" else TRAIN_BUDGET_S


def consent_inputs(consent: str | Path | None, waiver: str | None) -> None:
    if consent is None and not (waiver or "").strip():
        raise ConsentError(
            "cloning needs the speaker's consent: give --consent RECORDING (the speaker reading the "
            "statement from `voxclone consent NAME`) or, for estates and research, --consent-waiver REASON"
        )
    if consent is not None and (waiver or "").strip():
        raise ConsentError("give either --consent or --consent-waiver, not both")


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
    budget_s: float | None = None,
    max_evals: int | None = None,
    tts=None,
    library: VoiceLibrary | None = None,
    progress: Callable[[str], None] | None = None,
    fit_progress: Callable[[dict], None] | None = None,
    transcriber=None,
) -> dict:
    """Build voice ``name`` from recordings and store it; return its ``voice.json`` record.

    With ``quality`` best (train) or search, ``budget_s`` is the wall-clock time of the whole build
    (consent check, collecting, transcribing, aligning, fitting, scoring; default :func:`default_budget`);
    the fit gets what is left.
    ``max_evals`` also caps the fit's work: voices scored for search, gradient steps for train.
    Everything is checked before anything is stored; on any error the library is unchanged.
    """
    from ..api import Voxclone

    started = time.perf_counter()
    budget_s = budget_s or default_budget(quality)
    say = progress or (lambda msg: None)
    if fit_progress is not None:  # entries carry the build's elapsed time beside the fit's own seconds
        fit_progress = _with_elapsed(fit_progress, started)
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
    consent_inputs(consent, waiver)
    audit = tts.audit
    paths = list(inputs)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    consent_path = Path(consent) if consent is not None else None
    if consent_path is not None:
        if any(Path(p).resolve() == consent_path.resolve() for p in paths):
            raise ConsentError("the consent recording must not also be a training recording")
        store = library.consents
        statement = store.pending(name)
        c_samples, c_rate = read_audio(consent_path)
        say("checking the consent recording")
        check = check_recording(statement, c_samples, c_rate, None, transcriber=transcriber)
        if not check.ok:
            audit.append(  # what failed, not what was said: the log keeps nothing personal
                "consent_failed",
                None,
                statement_id=statement.id,
                code_heard=check.code_heard,
                statement_wer=round(check.statement_wer, 3),
                watermarked=check.watermarked,
            )
            raise ConsentError("consent not verified: " + "; ".join(check.reasons))
        record_consent = {
            "kind": "recording",
            "file": f"consent{consent_path.suffix.lower()}",
            "sha256": sha256_file(consent_path),
            "seconds": round(len(c_samples) / c_rate, 2),
            "statement_id": statement.id,
            "statement": statement.text,
            "recorded": now,
            **check.as_dict(),
        }
    else:
        record_consent = {"kind": "waiver", "reason": waiver.strip(), "recorded": now}

    # an instant voice needs the transcripts only for the speaking rate: greedy decoding is close enough
    col: Collection = collect(paths, language=None, progress=say, beam_size=1 if quality == "instant" else 5)
    if not col.enroll:
        raise AudioInputError("no clips left for enrolment after holding some out")
    hit = library.protected.match(col.embedding)
    if hit:
        audit.append("clone_refused", None, protected=hit[0], similarity=round(hit[1], 3))
        raise ProtectedVoiceError(
            f"these recordings sound like the protected voice {hit[0]!r} (similarity {hit[1]:.2f}); "
            "it may not be cloned"
        )
    if consent_path is not None:
        similarity = speaker_similarity(c_samples, c_rate, col.embedding)
        record_consent["speaker_similarity"] = round(similarity, 4)
        if problem := voice_mismatch(similarity):
            audit.append("consent_failed", None, statement_id=statement.id, speaker_similarity=round(similarity, 3))
            raise ConsentError("consent not verified: " + problem)
        record_consent["verified"] = True
    speak_lang = speaking_language(lang, col.language)
    say(f"building ({quality}) for {speak_lang}")
    builder = VoiceBuilder(tts, speak_lang)
    target = target_from(col, tts._g2p_for(speak_lang) if col.language.startswith(speak_lang[:2]) else None)
    built: Built = builder.instant(target)
    instant_similarity = built.similarity
    left = started + budget_s - time.perf_counter() - SCORING_S
    if quality != "instant" and left < MIN_FIT_S:
        say(f"the {budget_s:.0f} s budget is spent before fitting; keeping the instant voice")
        built.stopped = "budget spent before fitting"
    elif quality == "search":
        built = builder.best(target, built, seed=seed, budget_s=left, max_evals=max_evals, progress=fit_progress)
    elif quality in ("best", "train"):
        built = _train(tts, builder, target, col, built, seed, left, fit_progress, max_evals, say)
    record = {
        "id": uuid.uuid4().hex[:16],
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
            "total_seconds": round(time.perf_counter() - started, 1),  # up to storing
            "evaluations": built.evaluations,
            "seed": seed,
            "stopped": built.stopped,
            "builder_version": BUILDER_VERSION,
        },
        **({"intelligibility": built.intelligibility} if built.intelligibility else {}),
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
    library.create(
        name, record, built.pack, col.embedding, col.report, clips, built.log, consent_path, decoder=built.decoder
    )
    if consent_path is not None:
        store.consume(name)
        audit.append("consent_verified", record["id"], statement_id=statement.id)
    else:
        audit.append("consent_waiver", record["id"], reason_sha256=hashlib.sha256(waiver.strip().encode()).hexdigest())
    audit.append("voice_built", record["id"], quality=quality, seconds=round(built.seconds, 1))
    say(f"stored voice {name!r}")
    return record


def _with_elapsed(progress: Callable[[dict], None], t0: float) -> Callable[[dict], None]:
    """`progress` whose entries also carry ``elapsed``: seconds since `t0` (the build's start)."""
    return lambda entry: progress({**entry, "elapsed": round(time.perf_counter() - t0, 1)})


def _train(
    tts,
    builder: VoiceBuilder,
    target,
    col,
    start: Built,
    seed: int,
    budget_s: float,
    progress,
    steps: int | None,
    say: Callable[[str], None] = lambda m: None,
) -> Built:
    """Gradient-descent fit through the PyTorch Kokoro (voxclone.training), starting from the instant voice;
    its decoder adapter is then cut back as far as the intelligibility check needs (see .intelligibility)."""
    from ..training import convert
    from ..training.adapt import generator_span, train_voice
    from ..transcribe import Transcriber
    from . import intelligibility as intel

    t0 = time.perf_counter()
    texts = intel.check_sentences(builder.lang)
    asr, heard_as = Transcriber(), builder.lang.split("-")[0]
    first = None
    if texts:
        say("checking how well the start voice is understood")
        first = intel.word_errors(builder.speaker(start.pack, start.speed, start.pitch), texts, asr, heard_as)
    kw = {"steps": steps} if steps else {}
    model = convert.load()
    fitted, speed, pitch = train_voice(
        tts,
        col,
        start.pack,
        budget_s=budget_s - (time.perf_counter() - t0) - (2 * first.seconds if first else 0),  # two more checks
        seed=seed,
        progress=progress,
        lang=builder.lang,
        model=model,
        **kw,
    )
    pack, decoder, check = fitted.pack.astype(np.float32), fitted.decoder, None
    if first is not None and decoder is not None:
        say("checking how well the trained voice is understood")

        span = generator_span(model)
        earlier = fitted.earlier

        def voice(part: str) -> tuple[np.ndarray, float, float, np.ndarray | None]:
            if part == "earlier":
                return earlier.pack.astype(np.float32), earlier.speed, earlier.pitch, earlier.decoder
            return pack, speed, pitch, intel.kept(decoder, part, span)

        def trained(part: str) -> intel.Check:
            return intel.word_errors(builder.speaker(*voice(part)), texts, asr, heard_as)

        parts = tuple(p for p in intel.ADAPTERS if p != "earlier" or earlier is not None)
        part, log = intel.choose_adapter(first, trained, t0 + budget_s, say, parts)
        pack, speed, pitch, decoder = voice(part)
        check = {"sentences": len(texts), "decoder_adapter": part, "checks": log}
        if earlier is not None:
            check["earlier_step"] = earlier.step
    built = Built(pack, speed, pitch, dict(start.base), decoder=decoder)
    built.intelligibility = check
    built.similarity = builder.similarity(target, built.pack, builder.select_texts, speed, pitch, built.decoder)
    built.log = [{"step": 0, "note": "instant voice", "select": round(start.similarity, 4)}, *fitted.log]
    built.evaluations = fitted.steps
    built.seconds = fitted.seconds
    built.stopped = fitted.stopped
    return built
