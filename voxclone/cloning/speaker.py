"""Speaker embeddings: who is speaking, as a unit vector (Resemblyzer's GE2E encoder, 256-d)."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from ..audio import resample

RATE = 16_000


class SpeakerEncoder:
    """Resemblyzer's pretrained encoder (weights ship in the wheel; runs on torch, CPU)."""

    def __init__(self):
        self._encoder = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._encoder is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation notice
                    from resemblyzer import VoiceEncoder

                self._encoder = VoiceEncoder("cpu", verbose=False)
            return self._encoder

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Unit-norm embedding of one utterance (silences are trimmed first)."""
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(resample(np.asarray(samples, np.float32), sample_rate, RATE), source_sr=RATE)
        if len(wav) < RATE // 4:  # nearly all silence: embed what there is
            wav = resample(np.asarray(samples, np.float32), sample_rate, RATE)
        return _unit(self._load().embed_utterance(wav))

    def embed_many(self, clips: list[np.ndarray], sample_rate: int) -> np.ndarray:
        return np.stack([self.embed(c, sample_rate) for c in clips]) if clips else np.zeros((0, 256), np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / (np.linalg.norm(v) + 1e-9)


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """The speaker's reference: normalised mean of unit embeddings."""
    return _unit(np.asarray(embeddings, np.float32).mean(axis=0))


_shared: SpeakerEncoder | None = None


def shared_encoder() -> SpeakerEncoder:
    global _shared
    if _shared is None:
        _shared = SpeakerEncoder()
    return _shared
