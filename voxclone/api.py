"""The Python API: ``Voxclone`` speaks text with a ``SpeechSettings``.

from voxclone import Voxclone
tts = Voxclone()
tts.speak("Hello there.", voice="af_heart").save("hello.wav")
for chunk in tts.stream(long_text):   # pieces as soon as each is ready
    ...
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .audio import FORMATS, Audio, AudioWriter, format_for
from .cloning.library import VoiceLibrary
from .engine import assets
from .engine.kokoro import SAMPLE_RATE, KokoroEngine
from .engine.voices import DEFAULT_VOICE, VoiceInfo, blend, describe, style_for
from .errors import TextError, VoiceNotFoundError
from .safeguards import metadata, provenance
from .safeguards.audit import AuditLog, text_hash
from .safeguards.watermark import Watermarker
from .safeguards.watermark import shared as shared_watermarker
from .text import chunk
from .text.g2p import G2P, load_lexicon, resolve_language

log = logging.getLogger(__name__)

MAX_SPEAK_CHARS = 50_000  # speak() holds all audio in memory (~1 hour); save()/stream() do not
MAX_TEXT_CHARS = 500_000  # ~80,000 words, ~9 hours of speech
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_TRIM_DB = -50.0
_EDGE = int(0.03 * SAMPLE_RATE)
# Frames kept for a piece's trailing punctuation and closing boundary token: the model gives them up
# to 0.4 s of silence that _trim cuts anyway. The leading boundary token is left alone: capped even
# to 10 of its 13-14 frames, Whisper stops hearing the first word.
TAIL_FRAMES = 4
_TRAILING = set(';:,.!?¡¿—…"«»“”()[] ')


@dataclass(frozen=True)
class _Voice:
    pack: np.ndarray
    language: str
    speed: float = 1.0  # a cloned voice carries its speaker's rate and pitch
    pitch: float = 0.0
    voice_id: str | None = None
    waiver: str | None = None
    decoder: np.ndarray | None = None  # a trained voice's decoder adapter


@dataclass(frozen=True)
class SpeechSettings:
    """How to speak. ``pitch`` is in semitones; ``lang`` defaults to the voice's language."""

    voice: str = DEFAULT_VOICE
    speed: float = 1.0
    pitch: float = 0.0
    lang: str | None = None
    sample_rate: int = SAMPLE_RATE
    format: str = "wav"

    def validated(self) -> SpeechSettings:
        if not isinstance(self.voice, str) or not self.voice.strip():
            raise VoiceNotFoundError("no voice given")
        if not 0.5 <= float(self.speed) <= 2.0:
            raise ValueError(f"speed {self.speed} is outside 0.5..2.0")
        if not -12.0 <= float(self.pitch) <= 12.0:
            raise ValueError(f"pitch {self.pitch} semitones is outside -12..12")
        if int(self.sample_rate) not in SAMPLE_RATES:
            raise ValueError(f"sample rate {self.sample_rate} Hz is not one of {SAMPLE_RATES}")
        format_for(None, self.format)
        if self.lang is not None:
            resolve_language(self.lang)
        return self


class Voxclone:
    """Text to speech with stock and cloned voices. Thread-safe.

    ``model`` and ``voices`` accept a local path, an ``https://`` or ``hf://`` URL, or None for
    the packaged defaults. The model loads on first use (or call :meth:`load`). Each of ``sessions``
    model sessions runs on ``threads`` threads (default: every usable CPU); more than one lets
    concurrent callers (a server's requests) synthesise side by side.

    Every audio it returns carries the Perth watermark and "synthetic speech" labels, and each
    piece of speech is entered in the audit log. ``watermark=False`` is the only way around the
    mark; it is logged (warning and audit entry) and meant for research on the watermark itself.
    """

    def __init__(
        self,
        settings: SpeechSettings | None = None,
        *,
        model: str | os.PathLike | None = None,
        voices: str | os.PathLike | None = None,
        lexicon: str | os.PathLike | dict[str, str] | None = None,
        threads: int | None = None,
        sessions: int = 1,
        optimize: bool = True,
        library: str | os.PathLike | VoiceLibrary | None = None,
        watermark: bool = True,
        watermarker: Watermarker | None = None,
    ):
        self.settings = (settings or SpeechSettings()).validated()
        self._model_spec, self._voices_spec = model, voices
        self._threads, self._sessions, self._optimize = threads, sessions, optimize
        self._lexicon = load_lexicon(lexicon) if isinstance(lexicon, (str, os.PathLike)) else dict(lexicon or {})
        self._engine: KokoroEngine | None = None
        self._packs: dict[str, np.ndarray] | None = None
        self.voices_source = ""
        self._custom: dict[str, tuple[np.ndarray, VoiceInfo, np.ndarray | None]] = {}
        self.library = VoiceLibrary(library) if not isinstance(library, VoiceLibrary) else library
        self._g2p: dict[str, G2P] = {}
        self._vocab: dict[str, int] | None = None
        self._lock = threading.Lock()
        self.audit: AuditLog = self.library.audit
        self.watermark = bool(watermark)
        self._watermarker = watermarker
        if not self.watermark:
            log.warning("watermarking is OFF for this Voxclone instance: its audio cannot be detected as synthetic")
            self.audit.append("watermark_disabled", pid=os.getpid())

    @property
    def sessions(self) -> int:
        """How many model runs this instance takes side by side (onnxruntime sessions)."""
        return self._sessions

    # ------------------------------------------------------------------ loading
    def load(self) -> Voxclone:
        """Assemble/verify assets and load the model (and watermarker) now instead of on first use."""
        self.engine  # noqa: B018
        self._stock()
        if self.watermark:
            self.watermarker.load()
        return self

    def with_library(self, library: VoiceLibrary) -> Voxclone:
        """This instance speaking with another voice library (a server account's), sharing the loaded model."""
        self.engine  # noqa: B018  (load before copying, or each copy would load its own)
        self._stock()
        other = copy.copy(self)
        other.library, other.audit = library, library.audit
        return other

    @property
    def watermarker(self) -> Watermarker:
        if self._watermarker is None:
            self._watermarker = shared_watermarker()
        return self._watermarker

    @property
    def engine(self) -> KokoroEngine:
        with self._lock:
            if self._engine is None:
                path = assets.resolve_model(self._model_spec)
                self._engine = KokoroEngine(
                    path, threads=self._threads, optimize=self._optimize, sessions=self._sessions
                )
            return self._engine

    def _stock(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._packs is None:
                self._packs, self.voices_source = assets.load_voice_packs(self._voices_spec)
            return self._packs

    def _g2p_for(self, lang: str) -> G2P:
        with self._lock:
            if self._vocab is None:
                self._vocab = assets.vocab()
            if lang not in self._g2p:
                self._g2p[lang] = G2P(lang, self._vocab, self._lexicon)
            return self._g2p[lang]

    # ------------------------------------------------------------------ voices
    def voices(self) -> list[VoiceInfo]:
        """Stock voices (best graded first, English first), then cloned and added ones."""
        grades, langs = "ABCDF", ["en-us", "en-gb"]
        stock = sorted(
            (describe(n) for n in self._stock()),
            key=lambda v: (
                langs.index(v.language) if v.language in langs else 2,
                v.language,
                grades.find(v.grade[:1]) if v.grade else 9,
                v.grade[1:2] == "-",
                v.name,
            ),
        )
        cloned = []
        for name in self.library.names():
            record = self.library.record(name)
            cloned.append(VoiceInfo(name, record.get("language", "?"), record.get("gender", "?"), "cloned"))
        added = [info for _, info, _ in self._custom.values() if info.kind != "fitting"]
        return stock + cloned + added

    def add_voice(
        self,
        name: str,
        style: np.ndarray,
        language: str,
        gender: str = "?",
        kind: str = "user",
        decoder: np.ndarray | None = None,
    ) -> None:
        """Register a style pack (shape (N, 1, 256) or (256,)) under ``name`` for this instance, with a
        trained decoder adapter if it has one."""
        arr = np.asarray(style, np.float32)
        if arr.shape == (256,) or arr.shape == (1, 256):
            arr = np.repeat(arr.reshape(1, 1, 256), 510, axis=0)
        if arr.ndim != 3 or arr.shape[1:] != (1, 256):
            raise ValueError(f"a style pack has shape (N, 1, 256); got {arr.shape}")
        dec = None if decoder is None else np.asarray(decoder, np.float32).reshape(-1)
        self._custom[name] = (arr, VoiceInfo(name, resolve_language(language).code, gender, kind), dec)

    def voice_pack(self, voice: str) -> tuple[np.ndarray, str]:
        """The style pack and language of a voice name, or of a mix ``"af_heart:0.7,af_bella:0.3"``."""
        v = self._voice(voice)
        return v.pack, v.language

    def _voice(self, voice: str) -> _Voice:
        """A stock, cloned, added or mixed voice by name."""
        if voice in self._custom:
            pack, info, dec = self._custom[voice]
            return _Voice(pack, info.language, decoder=dec)
        stock = self._stock()
        if voice not in stock and "," not in voice and ":" not in voice and self.library.exists(voice):
            record, pack = self.library.load(voice)
            self.library.usable(voice, record)
            consent = record.get("consent") or {}
            return _Voice(
                pack,
                record.get("language", "en-us"),
                float(record.get("speed", 1.0)),
                float(record.get("pitch", 0.0)),
                voice_id=self.library.voice_id(voice, record),
                waiver=consent.get("reason") if consent.get("kind") == "waiver" else None,
                decoder=self.library.decoder(voice),
            )
        parts = [p.strip() for p in voice.split(",") if p.strip()]
        names, weights = [], []
        for p in parts:
            name, _, w = p.partition(":")
            names.append(name.strip())
            try:
                weights.append(float(w) if w else 1.0)
            except ValueError:
                raise VoiceNotFoundError(f"voice mix {voice!r}: weight {w!r} is not a number") from None
        missing = [n for n in names if n not in stock and n not in self._custom]
        if missing or not names:
            known = ", ".join(sorted(stock)[:8])
            raise VoiceNotFoundError(
                f"unknown voice {missing[0] if missing else voice!r}; run `voxclone voices` to list them (e.g. {known}, ...)"
            )
        packs = [self._custom[n][0] if n in self._custom else stock[n] for n in names]
        decoders = [self._custom[n][2] if n in self._custom else None for n in names]
        lang = self._custom[names[0]][1].language if names[0] in self._custom else describe(names[0]).language
        if len(packs) == 1:
            return _Voice(packs[0], lang, decoder=decoders[0])
        rows = min(len(p) for p in packs)
        mixed = blend([p[:rows] for p in packs], weights)
        decoder = None
        if any(d is not None for d in decoders):
            # a voice without an adapter, or without its low-rank part (trained before 0.14), adds zeros there;
            # A is shared (engine.optimize), so mixing the B values mixes the weight changes B A themselves
            size = max(len(d) for d in decoders if d is not None)
            w = np.asarray(weights, np.float32) / float(np.sum(weights))  # blend() has checked the weights
            full = [np.zeros(size, np.float32) if d is None else np.pad(d, (0, size - len(d))) for d in decoders]
            decoder = sum(wi * d for wi, d in zip(w, full, strict=True))
        return _Voice(mixed, lang, decoder=decoder)

    # ------------------------------------------------------------------ speaking
    def _resolve(self, settings: SpeechSettings | None, overrides: dict) -> SpeechSettings:
        base = settings or self.settings
        unknown = set(overrides) - set(asdict(base))
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(base, **overrides).validated()

    def stream(
        self,
        text: str,
        settings: SpeechSettings | None = None,
        *,
        fast_start: bool = True,
        progress: Callable[[int, int], None] | None = None,
        **overrides,
    ) -> Iterator[Audio]:
        """Yield speech piece by piece (each followed by its pause) as soon as each is ready.

        With ``fast_start`` a long first sentence is cut at its first phrase so audio starts
        sooner; with ``fast_start=False`` the pieces join into exactly :meth:`speak`'s audio.
        ``progress(done_chars, total_chars)`` is called after each piece. Each piece is
        watermarked; the whole is entered in the audit log when the stream ends.
        """
        s = self._resolve(settings, overrides)
        yield from self._marked(text, s, self._voice(s.voice), fast_start, progress)

    def _marked(
        self,
        text: str,
        s: SpeechSettings,
        voice: _Voice,
        fast_start: bool,
        progress: Callable[[int, int], None] | None,
        first_phonemes: int | Callable[[], int] = chunk.FIRST_PHONEMES,
        piece_limit: Callable[[], int] | None = None,
    ) -> Iterator[Audio]:
        """The pieces as callers get them: watermarked, labelled, and logged when the stream ends.

        ``first_phonemes`` (with ``fast_start``) may be a function, asked once, when the first piece is
        planned; ``piece_limit`` is asked before each piece for the most phonemes it may have. A busy
        server asks for short pieces either way; pieces are then cut at phrase breaks.
        """
        tags = metadata.tags_for(s.voice, voice.voice_id, voice.waiver)
        claim = provenance.manifest(s.voice, voice.voice_id, voice.waiver)
        seconds = 0.0
        try:
            for piece in self._pieces(text, s, voice, fast_start, progress, first_phonemes, piece_limit):
                if self.watermark:
                    piece.samples = self.watermarker.embed(piece.samples, piece.sample_rate)
                piece.tags, piece.provenance = dict(tags), claim
                seconds += piece.duration
                yield piece
        finally:
            if seconds:
                self.audit.append(
                    "speech_generated",
                    voice.voice_id,
                    voice=s.voice if voice.voice_id is None else None,
                    text_sha256=text_hash(text),
                    seconds=round(seconds, 2),
                    watermarked=self.watermark,
                )

    def _render(self, text: str, settings: SpeechSettings | None = None, **overrides) -> Audio:
        """Unmarked, unlogged speech for use inside this process only (fitting and scoring voices)."""
        s = self._resolve(settings, overrides)
        parts = list(self._pieces(text, s, self._voice(s.voice), False, None))
        return Audio(np.concatenate([p.samples for p in parts]), s.sample_rate, text)

    def _pieces(
        self,
        text: str,
        s: SpeechSettings,
        voice: _Voice,
        fast_start: bool,
        progress: Callable[[int, int], None] | None,
        first_phonemes: int | Callable[[], int] = chunk.FIRST_PHONEMES,
        piece_limit: Callable[[], int] | None = None,
    ) -> Iterator[Audio]:
        g2p = self._g2p_for(resolve_language(s.lang or voice.language).code)
        prepared = self._prepare(text, g2p, MAX_TEXT_CHARS)
        engine = self.engine
        speed = min(2.0, max(0.5, s.speed * voice.speed))
        f0_scale = float(2.0 ** ((s.pitch + voice.pitch) / 12.0))
        total, done = len(prepared.text), 0

        def phonemize(piece: str) -> str:
            return g2p.phonemize(piece, prepared.overrides)

        spoke = False
        if callable(first_phonemes):  # asked now, at the first next(): how busy a server is when it plans
            first_phonemes = first_phonemes()
        planned = chunk.plan(prepared.text, phonemize, fast_start=fast_start, first_phonemes=first_phonemes)
        if fast_start:  # later pieces grow from the first, so each is ready before the last has played
            planned = chunk.ramp(planned, phonemize, max(first_phonemes, chunk.RAMP_FROM))
        if piece_limit is not None:
            planned = (part for p in planned for part in chunk.split(p, phonemize, piece_limit()))
        for piece in planned:
            symbols = [c for c in piece.phonemes if c in g2p.vocab]
            tokens = [g2p.vocab[c] for c in symbols]
            if not tokens:
                continue
            wave = engine.infer(
                tokens,
                style_for(voice.pack, len(tokens)),
                speed=speed,
                f0_scale=f0_scale,
                decoder_bias=voice.decoder,
                max_durations=tail_caps(symbols),
            )
            wave = _trim(wave)
            pause = np.zeros(int(round(piece.pause / speed * SAMPLE_RATE)), np.float32)
            samples = np.concatenate([wave, pause])
            spoke = True
            done = min(total, done + len(piece.text) + 1)
            if progress:
                progress(done, total)
            audio = Audio(samples, SAMPLE_RATE, _restore(piece.text, prepared.overrides))
            yield audio.resample(s.sample_rate) if s.sample_rate != SAMPLE_RATE else audio
        if not spoke:
            raise TextError("the text has nothing to say: no word could be pronounced")

    def speak(self, text: str, settings: SpeechSettings | None = None, **overrides) -> Audio:
        """All of ``text`` as one :class:`Audio` (use :meth:`save` for very long text)."""
        if isinstance(text, str) and len(text) > MAX_SPEAK_CHARS:
            raise TextError(
                f"text has {len(text):,} characters; speak() keeps audio in memory and takes at most "
                f"{MAX_SPEAK_CHARS:,}. Use save() or `voxclone say -f FILE -o OUT`, which stream to disk."
            )
        s = self._resolve(settings, overrides)
        parts = list(self.stream(text, s, fast_start=False))
        return Audio(
            np.concatenate([p.samples for p in parts]), s.sample_rate, text, parts[0].tags, parts[0].provenance
        )

    def save(
        self,
        text: str,
        path: str | os.PathLike,
        settings: SpeechSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        **overrides,
    ) -> float:
        """Speak ``text`` into a file, streaming (bounded memory); return its duration in seconds.

        The format comes from ``format=`` or the extension. Nothing is left at ``path`` on failure.
        """
        fmt = overrides.pop("format", None)
        s = self._resolve(settings, overrides)
        fmt = format_for(path, fmt)
        self._prepare(text, None, MAX_TEXT_CHARS)  # fail on bad text before creating anything
        v = self._voice(s.voice)
        return self._write(self._marked(text, s, v, False, progress), path, s, v, fmt)

    def _write(self, pieces: Iterable[Audio], path: str | os.PathLike, s: SpeechSettings, v: _Voice, fmt: str) -> float:
        """Marked ``pieces`` into a labelled file (tags and signed manifest), renamed into place when done."""
        with AudioWriter(
            path,
            s.sample_rate,
            fmt,
            tags=metadata.tags_for(s.voice, v.voice_id, v.waiver),
            provenance=provenance.manifest(s.voice, v.voice_id, v.waiver),
        ) as out:
            for piece in pieces:
                out.write(piece.samples)
            return out.duration

    @staticmethod
    def _prepare(text: str, g2p: G2P | None, limit: int):
        if not isinstance(text, str):
            raise TextError(f"text must be a string, not {type(text).__name__}")
        if len(text) > limit:
            raise TextError(f"text has {len(text):,} characters; the limit is {limit:,}. Split it into several files.")
        if not text.strip():
            raise TextError("the text is empty")
        if g2p is None:
            return None
        prepared = g2p.prepare(text)
        if not prepared.overrides and not re.search(r"[^\W_]", prepared.text):
            raise TextError("the text has nothing to say: it holds only punctuation or symbols")
        return prepared


def tail_caps(symbols: list[str], frames: int = TAIL_FRAMES) -> np.ndarray:
    """Per-token frame caps (boundary tokens included) that shorten only the silent tail of a piece."""
    caps = np.full(len(symbols) + 2, np.iinfo(np.int64).max, np.int64)
    caps[-1] = frames
    i = len(symbols)
    while i > 0 and symbols[i - 1] in _TRAILING:
        caps[i] = frames
        i -= 1
    return caps


def _trim(wave: np.ndarray) -> np.ndarray:
    """Cut the model's leading/trailing near-silence, keeping a short natural edge."""
    if wave.size == 0:
        return wave
    peak = float(np.max(np.abs(wave)))
    if peak <= 0:
        return wave[:0]
    loud = np.flatnonzero(np.abs(wave) > peak * 10 ** (_TRIM_DB / 20))
    return wave[max(0, loud[0] - _EDGE) : loud[-1] + _EDGE]


def _restore(text: str, overrides: list[str]) -> str:
    return re.sub("[\ue000-\uf8ff]", lambda m: f"/{overrides[ord(m.group(0)) - 0xE000]}/", text)


def read_text_file(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file with a clear error (and a size check before reading it all)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise TextError(f"cannot read {p}: {e.strerror or e}") from e
    if size > MAX_TEXT_CHARS * 4:
        raise TextError(
            f"{p} is {size:,} bytes; the limit is {MAX_TEXT_CHARS:,} characters. Split it into several files."
        )
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TextError(f"{p} is not UTF-8 text: {e}") from e


__all__ = ["FORMATS", "MAX_SPEAK_CHARS", "MAX_TEXT_CHARS", "SpeechSettings", "Voxclone", "read_text_file"]
