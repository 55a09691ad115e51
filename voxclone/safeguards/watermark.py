"""Inaudible neural watermark (Resemble's Perth, the one Chatterbox uses) on every output.

Perth's weights ship in the ``resemble-perth`` wheel. Its audio front-end imports torchaudio, which
has no release that loads beside the torch we pin; Perth needs from it only a centred STFT/iSTFT and
one buffer, so when torchaudio is missing we give Perth those through ``torch.stft`` while importing.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio import resample
from ..errors import VoxcloneError

log = logging.getLogger(__name__)

PERTH_RATE = 32_000
THRESHOLD = 0.5  # Perth's decoder answers 0 (unmarked) .. 1 (marked); it rounds at 0.5
MIN_SECONDS = 0.5  # shorter audio carries too few frames for a reliable answer
# Perth survives tempo changes but not tape-style speed changes (pitch moves with tempo): the mark
# sits in fixed bands. Detection therefore also tries undoing speed changes of up to +-14%, 2% apart.
# More tries mean more chances for real speech to score high by luck, so a mark found that way must
# be clearer: on 307 real clips no try reached 0.7, while 144 marked clips changed by 5-10% all gave
# >= 0.95 at the best try (`voxclone bench watermark` measures both).
SPEED_SEARCH = tuple(f for k in range(1, 8) for f in (round(1 + 0.02 * k, 2), round(1 - 0.02 * k, 2)))
SEARCH_THRESHOLD = 0.9
# Perth's residual is as loud in pauses and quiet frames as in speech, where nothing masks it. It is
# held at most GATE x the audio's own level (~10 dB below it), frame by frame. `bench watermark`:
# DNSMOS cost 0.087 -> 0.077 at 0.3, every detection rate unchanged. On 30 clips lower gates cost
# detection under noise (0.25: 0.065-0.067, noise 97-100%; 0.2: 0.057, 93%; 0.15: 0.042, 73%),
# and plain strength scaling does worse (0.7: 0.042, noise 60%).
GATE = 0.3
# The residual's spectrum is reshaped before the gate. Its part under ~500 Hz is nearly all of what
# DNSMOS hears (that band alone cost 0.068 of a 0.085 drop on 40 clips) yet carries little of the
# mark, while 1-2 kHz costs DNSMOS nothing and carries most of it; DistillMOS, the other predictor,
# objects instead to a strong 1-2 kHz boost (x2: 0.065 drop). Gains (Hz, x) between the two, chosen
# on 40 clips by the larger of the two drops with noise at 20 dB still detected: see `bench watermark`.
SHAPE = ((0.0, 0.4), (500.0, 0.4), (700.0, 1.0), (1000.0, 1.6), (PERTH_RATE / 2, 1.6))
_SHAPE_TAPS = 511  # ~16 ms at Perth's rate: resolves the 200-300 Hz transitions
_SHAPE_FFT = 16_384  # per block: 15,364 samples plus the filter's reach (255) on each side, and its tail
_GATE_HOP = 256  # 8 ms at Perth's rate
_GATE_FRAMES = 5  # the level is measured over ~32 ms


class WatermarkError(VoxcloneError):
    """The watermarker could not be loaded or run."""


@dataclass(frozen=True)
class Verdict:
    marked: bool
    confidence: float  # Perth's decoder output, 0..1
    seconds: float
    speed: float = 1.0  # the speed change undone to find the mark

    def as_dict(self) -> dict:
        return {
            "watermarked": self.marked,
            "confidence": round(self.confidence, 4),
            "seconds": round(self.seconds, 2),
            "speed_change": round(self.speed, 2),
        }


def _torchaudio_stand_in() -> types.ModuleType:
    import torch
    from torch import nn

    class Spectrogram(nn.Module):
        def __init__(self, n_fft, win_length, hop_length, window_fn, power=None, normalized=False):
            super().__init__()
            self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
            self.register_buffer("window", window_fn(win_length))

        def forward(self, x):
            return torch.stft(
                x,
                self.n_fft,
                self.hop_length,
                self.win_length,
                self.window,
                center=True,
                pad_mode="reflect",
                normalized=False,
                onesided=True,
                return_complex=True,
            )

    class InverseSpectrogram(Spectrogram):
        def forward(self, spec):
            return torch.istft(
                spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True, normalized=False
            )

    class TimeStretch(nn.Module):  # training-only in Perth; kept for its checkpoint buffer
        def __init__(self, n_freq, hop_length):
            super().__init__()
            self.register_buffer("phase_advance", torch.linspace(0, np.pi * hop_length, n_freq)[..., None])

    mod = types.ModuleType("torchaudio.transforms")
    mod.Spectrogram, mod.InverseSpectrogram, mod.TimeStretch = Spectrogram, InverseSpectrogram, TimeStretch
    return mod


@contextlib.contextmanager
def torchaudio_or_stand_in() -> Iterator[bool]:
    """Inside: ``import torchaudio.transforms`` works, through our stand-in where the real one cannot
    load beside this torch. Yields whether the stand-in is in place; ``sys.modules`` is restored after."""
    try:
        import torchaudio.transforms  # noqa: F401

        stand_in = None
    except Exception:  # absent, or present but broken against this torch
        stand_in = _torchaudio_stand_in()
    saved = {k: sys.modules.get(k) for k in ("torchaudio", "torchaudio.transforms")}
    if stand_in is not None:
        parent = types.ModuleType("torchaudio")
        parent.transforms = stand_in
        sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = parent, stand_in
    try:
        yield stand_in is not None
    finally:
        if stand_in is not None:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v


def _import_perth():
    # Perth prints on load (stdout may carry audio) and imports the deprecated pkg_resources
    with (
        torchaudio_or_stand_in() as standing_in,
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        if standing_in:
            for name in [m for m in sys.modules if m.startswith("perth")]:
                del sys.modules[name]  # a failed earlier import left PerthImplicitWatermarker = None
        try:
            from perth.perth_net import PREPACKAGED_MODELS_DIR
            from perth.perth_net.perth_net_implicit.perth_watermarker import PerthImplicitWatermarker
        except ImportError as e:
            raise WatermarkError(
                f"the watermarker (PyPI resemble-perth) is not installed or incomplete: {e}. "
                "Reinstall voxclone: pip install -e ."
            ) from e
        return PerthImplicitWatermarker(run_name="implicit", models_dir=PREPACKAGED_MODELS_DIR)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples (STFT and resampling round lengths)."""
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


@functools.lru_cache(maxsize=4)
def _shape_spectrum(points: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The FIR filter of gains ``points`` (Hz, x), as its spectrum for blocks of ``_SHAPE_FFT``."""
    from scipy.signal import firwin2

    nyq = PERTH_RATE / 2
    taps = firwin2(_SHAPE_TAPS, [f / nyq for f, _ in points], [g for _, g in points])
    return np.fft.rfft(taps.astype(np.float32), _SHAPE_FFT)


def shape(clean: np.ndarray, marked: np.ndarray, points: tuple = SHAPE) -> np.ndarray:
    """``marked`` with its residual passed through a zero-phase filter of gains ``points`` (Hz, x).

    Filtered a block at a time by FFT (overlap-save) so memory stays at one output buffer.
    """
    spectrum = _shape_spectrum(tuple(points))
    n, half = len(clean), (_SHAPE_TAPS - 1) // 2
    block = _SHAPE_FFT - 4 * half
    out = np.empty(n, np.float32)
    for s in range(0, n, block):
        e = min(n, s + block)
        lo, hi = max(0, s - half), min(n, e + half)
        seg = np.zeros(e - s + 2 * half, np.float32)
        seg[lo - (s - half) : hi - (s - half)] = marked[lo:hi] - clean[lo:hi]
        y = np.fft.irfft(np.fft.rfft(seg, _SHAPE_FFT) * spectrum, _SHAPE_FFT)
        out[s:e] = clean[s:e] + y[2 * half : 2 * half + e - s]
    return out


def gate(clean: np.ndarray, marked: np.ndarray, ratio: float = GATE, out: np.ndarray | None = None) -> np.ndarray:
    """``marked`` with its residual held at most ``ratio`` x the clean audio's level, frame by frame.

    Works through the audio a block at a time so memory stays at one output buffer, however long;
    ``out`` may be ``marked`` itself (each block is read before it is written).
    """
    n, hop, block = len(clean), _GATE_HOP, _GATE_HOP * 64
    frames = -(-n // hop)
    power = np.zeros((2, frames), np.float64)
    for s in range(0, n, block):
        c, m = clean[s : s + block], marked[s : s + block]
        r = m - c
        k = -(-len(c) // hop)
        pad = k * hop - len(c)
        power[0, s // hop : s // hop + k] = np.pad(c * c, (0, pad)).reshape(k, hop).mean(axis=1)
        power[1, s // hop : s // hop + k] = np.pad(r * r, (0, pad)).reshape(k, hop).mean(axis=1)
    window = np.hanning(_GATE_FRAMES + 2)[1:-1]
    window /= window.sum()
    env = np.sqrt([np.convolve(p, window, mode="same") for p in power])
    gain = np.minimum(1.0, ratio * env[0] / (env[1] + 1e-9))
    centres = np.arange(frames) * hop + hop / 2
    out = np.empty(n, np.float32) if out is None else out
    for s in range(0, n, block):
        c, m = clean[s : s + block], marked[s : s + block]
        g = np.interp(np.arange(s, s + len(c)), centres, gain).astype(np.float32)
        out[s : s + len(c)] = c + g * (m - c)
    return out


class Watermarker:
    """Embed and detect the Perth watermark at any sample rate. Thread-safe; loads on first use."""

    def __init__(self, threads: int | None = None):
        self._net = None
        self._threads = threads
        self._lock = threading.Lock()

    def _model(self):
        with self._lock:
            if self._net is None:
                import torch

                if self._threads:
                    torch.set_num_threads(self._threads)
                self._net = _import_perth()
                self._net.perth_net.eval()
            return self._net

    def load(self) -> Watermarker:
        self._model()
        return self

    def embed(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """The same audio carrying the watermark (same length, same rate)."""
        x = np.asarray(samples, np.float32)
        if x.size < 2048 * 2 * rate // PERTH_RATE or not np.any(x):
            return x  # too short for one STFT frame pair, or silent: nothing to carry a mark
        import torch

        net = self._model()
        y = resample(x, rate, PERTH_RATE)
        with torch.inference_mode():
            marked = np.asarray(net.apply_watermark(y, sample_rate=PERTH_RATE), np.float32)
        shaped = shape(y, _fit(marked, len(y)))
        del marked  # long audio: keep one 32 kHz copy besides the clean one
        out = _fit(resample(gate(y, shaped, out=shaped), PERTH_RATE, rate), len(x))
        peak = float(np.max(np.abs(out)))
        return out / peak * 0.999 if peak > 1.0 else out

    def detect(self, samples: np.ndarray, rate: int, search_speed: bool = True) -> Verdict:
        """Whether ``samples`` carry the watermark, with Perth's confidence.

        With ``search_speed``, audio played faster or slower (pitch with it) is also checked.
        """
        x = np.asarray(samples, np.float32)
        seconds = len(x) / rate if rate else 0.0
        if seconds < MIN_SECONDS or not np.any(x):
            return Verdict(False, 0.0, seconds)
        plain = self._confidence(resample(x, rate, PERTH_RATE))
        if plain >= THRESHOLD or not search_speed:
            return Verdict(plain >= THRESHOLD, plain, seconds)
        best = Verdict(False, plain, seconds)
        for factor in SPEED_SEARCH:
            # audio sped up by `factor` is undone by reading it as if recorded at rate * factor
            conf = self._confidence(resample(x, int(round(rate * factor)), PERTH_RATE))
            if conf >= SEARCH_THRESHOLD:
                return Verdict(True, conf, seconds, factor)
            if conf > best.confidence:
                best = Verdict(False, conf, seconds, factor)
        return best

    def _confidence(self, y: np.ndarray) -> float:
        import torch

        net = self._model()
        with torch.inference_mode():
            return float(np.asarray(net.get_watermark(y, sample_rate=PERTH_RATE, round=False)).reshape(-1)[0])


_shared: Watermarker | None = None
_shared_lock = threading.Lock()


def shared() -> Watermarker:
    """One process-wide watermarker (the net is small; loading it twice wastes a second)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Watermarker()
        return _shared
