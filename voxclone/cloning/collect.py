"""Collect a speaker's audio: decode, normalise, split on silence, score, transcribe, report.

Input: files or folders of any common format, rate and channel count. Output: a
:class:`Collection` of 1-15 s clips at 24 kHz (the model's rate) with per-clip measurements,
flags, transcripts, and a report that says what to fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..audio import read_audio, resample
from ..errors import AudioInputError
from . import quality
from .speaker import centroid, shared_encoder

CLIP_RATE = 24_000
VAD_RATE = quality.VAD_RATE
MIN_CLIP_S, MAX_CLIP_S = 1.0, 15.0
MIN_BUILD_S = 3.0  # below this there is not enough to hear who is speaking
RECOMMENDED_S = 10.0
GOOD_S = 60.0
AUDIO_SUFFIXES = {
    ".wav",
    ".flac",
    ".mp3",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".aac",
    ".webm",
    ".mp4",
    ".aiff",
    ".aif",
    ".wma",
}

# flag -> (excluded from building?, advice when any clip has it)
FLAGS = {
    "clipping": (True, "{n} clip(s) clip (distorted peaks): lower the microphone gain and record them again"),
    "noisy": (False, "{n} clip(s) are noisy (SNR under 20 dB): record somewhere quieter"),
    "very-noisy": (True, "{n} clip(s) are too noisy to use (SNR under 10 dB) and were left out"),
    "reverberant": (False, "{n} clip(s) sound echoey: record in a small furnished room, close to the microphone"),
    "other-speaker": (True, "{n} clip(s) sound like someone else and were left out"),
    "too-short": (True, "{n} piece(s) of speech were shorter than 1 s and were left out"),
    "too-quiet": (False, "{n} clip(s) were very quiet (under -40 LUFS): move closer to the microphone"),
}


@dataclass
class Clip:
    id: str
    source: str
    start: float
    end: float
    duration: float
    loudness_lufs: float
    snr_db: float
    clipped: float
    decay_s: float
    f0_hz: float
    similarity: float = 1.0
    text: str = ""
    language: str = ""
    flags: list[str] = field(default_factory=list)
    use: str = "enroll"  # enroll | heldout | excluded
    samples: np.ndarray | None = field(default=None, repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("samples")
        d.pop("embedding")
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class Collection:
    clips: list[Clip]
    sources: list[dict]
    language: str
    embedding: np.ndarray
    report: dict
    channel_hz: int = 0  # 4000 when the recordings are telephone-band (see quality.channel_of)

    @property
    def enroll(self) -> list[Clip]:
        return [c for c in self.clips if c.use == "enroll"]

    @property
    def heldout(self) -> list[Clip]:
        return [c for c in self.clips if c.use == "heldout"]


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the audio files inside folders (sorted); errors name the path."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise AudioInputError(f"{p}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise AudioInputError(f"{p}: no such file or folder")
    if not out:
        raise AudioInputError("no input recordings given")
    return out


def collect(
    paths: Iterable[str | Path],
    language: str | None = None,
    transcribe: bool = True,
    heldout_fraction: float = 0.15,
    progress: Callable[[str], None] | None = None,
    beam_size: int = 5,
) -> Collection:
    """Turn recordings into scored, transcribed clips (see the module docstring).

    Raises AudioInputError when a file cannot be decoded or no usable speech remains.
    """
    say = progress or (lambda msg: None)
    files = expand_inputs(paths)
    clips: list[Clip] = []
    sources: list[dict] = []
    notes: list[str] = []
    for f in files:
        say(f"reading {f.name}")
        raw, rate = read_audio(f)
        sources.append(
            {
                "file": f.name,
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "seconds": round(len(raw) / rate, 2),
                "sample_rate": rate,
                "bandwidth_hz": round(min(rate / 2, quality.bandwidth_hz(raw, rate))),
            }
        )
        if len(raw) < int(0.1 * rate) or float(np.max(np.abs(raw))) < 1e-4:
            notes.append(f"{f.name}: silent, nothing to use")
            continue
        clipped = quality.clipped_fraction(raw)
        lufs_source = quality.loudness_lufs(raw, rate)
        x = quality.normalize_loudness(raw, rate)
        x16 = resample(x, rate, VAD_RATE)
        spans = quality.speech_spans(x16, MAX_CLIP_S)
        if not spans:
            notes.append(f"{f.name}: no speech found")
            continue
        mask = np.zeros(len(quality.frame_rms(x16, VAD_RATE)), bool)
        hop = int(VAD_RATE * quality.FRAME_S)
        for s, e in spans:
            mask[s // hop : e // hop + 1] = True
        floor = quality.noise_floor(x16, VAD_RATE, mask)
        decay = quality.decay_time(x16, VAD_RATE, [e for _, e in spans], floor)
        for s, e in spans:
            seg16 = x16[s:e]
            lo, hi = int(s * rate / VAD_RATE), int(e * rate / VAD_RATE)
            clip = Clip(
                id=f"c{len(clips) + 1:03d}",
                source=f.name,
                start=round(s / VAD_RATE, 3),
                end=round(e / VAD_RATE, 3),
                duration=round((e - s) / VAD_RATE, 3),
                loudness_lufs=lufs_source,
                snr_db=quality.snr_db(seg16, floor, VAD_RATE),
                clipped=quality.clipped_fraction(raw[lo:hi]) if clipped else 0.0,
                decay_s=decay,
                f0_hz=quality.median_f0(seg16, VAD_RATE),
                samples=resample(x[lo:hi], rate, CLIP_RATE),
            )
            clip.flags = _flags(clip)
            clips.append(clip)
    usable = [c for c in clips if not _excluded(c)]
    if not usable:
        heard = sum(c.duration for c in clips)
        if not clips:
            raise AudioInputError(f"no usable speech in the input ({'; '.join(notes) or 'nothing decoded'})")
        if heard < MIN_BUILD_S:
            raise AudioInputError(
                f"only {heard:.1f} s of speech in the input; a voice needs at least {MIN_BUILD_S:.0f} s of usable speech "
                f"({RECOMMENDED_S:.0f} s or more recommended)"
            )
        problems = sorted({f for c in clips for f in c.flags})
        raise AudioInputError(f"no usable speech in the input: every clip was left out ({', '.join(problems)})")
    _check_speakers(usable)
    usable = [c for c in usable if not _excluded(c)]
    total = sum(c.duration for c in usable)
    if total < MIN_BUILD_S:
        raise AudioInputError(
            f"only {total:.1f} s of usable speech; a voice needs at least {MIN_BUILD_S:.0f} s "
            f"({RECOMMENDED_S:.0f} s or more recommended)"
        )
    for c in clips:
        if _excluded(c):
            c.use = "excluded"
    _hold_out(usable, heldout_fraction)
    lang = language or ""
    if transcribe:
        from ..transcribe import Transcriber

        say(f"transcribing {len(usable)} clip(s)")
        heard = Transcriber().transcribe_clips([c.samples for c in usable], language or None, CLIP_RATE, beam_size)
        for i, (c, (text, heard_lang)) in enumerate(zip(usable, heard, strict=True)):
            c.text, c.language = text, heard_lang
            say(f"transcribed {i + 1}/{len(usable)}")
        if not lang:
            langs = [c.language for c in usable if c.language]
            lang = max(set(langs), key=langs.count) if langs else ""
    embedding = centroid(np.stack([_emb(c) for c in usable if c.use == "enroll"] or [_emb(usable[0])]))
    used = {c.source for c in usable}
    channel = quality.channel_of([s["bandwidth_hz"] for s in sources if s["file"] in used])
    if channel:
        notes.append(
            f"the recordings are telephone quality (about {channel / 1000:.0f} kHz wide): the voice is matched through "
            "the same band, and a full-band microphone recording would make a better one"
        )
    report = make_report(clips, sources, notes, lang)
    report["channel_hz"] = channel
    return Collection(clips, sources, lang, embedding, report, channel)


def _flags(c: Clip) -> list[str]:
    flags = []
    if c.duration < MIN_CLIP_S:
        flags.append("too-short")
    if c.clipped >= 0.001:
        flags.append("clipping")
    if c.snr_db < 10:
        flags.append("very-noisy")
    elif c.snr_db < 20:
        flags.append("noisy")
    if c.decay_s > 0.3:
        flags.append("reverberant")
    if np.isfinite(c.loudness_lufs) and c.loudness_lufs < -40:
        flags.append("too-quiet")
    return flags


def _excluded(c: Clip) -> bool:
    return any(FLAGS[f][0] for f in c.flags)


def _emb(c: Clip) -> np.ndarray:
    if c.embedding is None:
        c.embedding = shared_encoder().embed(c.samples, CLIP_RATE)
    return c.embedding


def _check_speakers(clips: list[Clip]) -> None:
    """Flag clips whose voice is far from the majority's (a second person in the recordings)."""
    embs = np.stack([_emb(c) for c in clips])
    ref = centroid(embs)
    for _ in range(2):  # re-centre on the clips that agree, so a large minority cannot drag it
        sims = embs @ ref
        keep = sims >= np.median(sims) - 0.1
        ref = centroid(embs[keep])
    sims = embs @ ref
    for c, s in zip(clips, sims, strict=True):
        c.similarity = float(s)
        if len(clips) >= 2 and s < 0.7 and s < np.median(sims) - 0.1:
            c.flags.append("other-speaker")


def _hold_out(clips: list[Clip], fraction: float) -> None:
    """Reserve every k-th clip for evaluation, never for building (only when there are enough)."""
    n = int(len(clips) * fraction)
    if len(clips) < 5 or n == 0:
        return
    step = len(clips) / n
    for i in range(n):
        clips[min(len(clips) - 1, int(i * step + step / 2))].use = "heldout"


def make_report(clips: list[Clip], sources: list[dict], notes: list[str], language: str) -> dict:
    usable = [c for c in clips if c.use in ("enroll", "heldout")]
    seconds = sum(c.duration for c in usable)
    advice = []
    if seconds < RECOMMENDED_S:
        advice.append(
            f"{seconds:.1f} s of clean speech: record {RECOMMENDED_S - seconds:.0f} s more for a good instant voice"
        )
    elif seconds < GOOD_S:
        advice.append(
            f"{seconds:.1f} s of clean speech: enough for an instant voice; 1-3 minutes make a better fitted one"
        )
    else:
        advice.append(f"{seconds:.1f} s of clean speech: plenty")
    for flag, (_, text) in FLAGS.items():
        n = sum(flag in c.flags for c in clips)
        if n:
            advice.append(text.format(n=n))
    advice.extend(notes)
    return {
        "language": language,
        "clean_speech_s": round(seconds, 2),
        "clips_total": len(clips),
        "clips_enroll": sum(c.use == "enroll" for c in clips),
        "clips_heldout": sum(c.use == "heldout" for c in clips),
        "clips_excluded": sum(c.use == "excluded" for c in clips),
        "median_f0_hz": round(float(np.median([c.f0_hz for c in usable if c.f0_hz > 0] or [0])), 1),
        "advice": advice,
        "sources": sources,
        "clips": [c.to_json() for c in clips],
    }
