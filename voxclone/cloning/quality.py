"""Measurements of a recording: loudness, clipping, noise, room echo, pitch."""

from __future__ import annotations

import numpy as np

FRAME_S = 0.02


VAD_RATE = 16_000


def speech_spans(x16: np.ndarray, max_s: float = 15.0) -> list[tuple[int, int]]:
    """Speech regions (Silero VAD, 16 kHz sample indices), joined across pauses under 0.6 s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=0.5, min_silence_duration_ms=250, speech_pad_ms=120, max_speech_duration_s=max_s)
    merged: list[tuple[int, int]] = []
    for span in get_speech_timestamps(np.asarray(x16, np.float32), opts):
        start, end = span["start"], span["end"]
        if merged and start - merged[-1][1] < 0.6 * VAD_RATE and end - merged[-1][0] <= max_s * VAD_RATE:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def speech_seconds(x: np.ndarray, rate: int) -> float:
    """Seconds of speech as the VAD sees it (the same measure for real and synthetic audio)."""
    from ..audio import resample

    return sum(e - s for s, e in speech_spans(resample(np.asarray(x, np.float32), rate, VAD_RATE))) / VAD_RATE


def frame_rms(x: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    n = max(1, int(rate * frame_s))
    k = len(x) // n
    if k == 0:
        return np.array([float(np.sqrt(np.mean(x**2))) if len(x) else 0.0])
    return np.sqrt(np.mean(x[: k * n].reshape(k, n) ** 2, axis=1) + 1e-12)


def db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-9)))


def loudness_lufs(x: np.ndarray, rate: int) -> float:
    """Integrated loudness (EBU R128 / ITU-R BS.1770) in LUFS; -inf for silence."""
    import pyloudnorm

    if len(x) < int(0.4 * rate):  # the meter's gating block is 400 ms
        x = np.pad(x, (0, int(0.4 * rate) - len(x) + 1))
    return float(pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64)))


def normalize_loudness(x: np.ndarray, rate: int, target_lufs: float = -20.0, peak_dbfs: float = -1.0) -> np.ndarray:
    """Gain to ``target_lufs``, reduced if that would push peaks above ``peak_dbfs``."""
    lufs = loudness_lufs(x, rate)
    if not np.isfinite(lufs):
        return x
    gain_db = target_lufs - lufs
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        gain_db = min(gain_db, peak_dbfs - db(peak))
    return (x * 10 ** (gain_db / 20)).astype(np.float32)


def clipped_fraction(x: np.ndarray, full_scale: float = 1.0) -> float:
    """Share of samples at (or within 0.1% of) full scale."""
    if len(x) == 0:
        return 0.0
    return float(np.mean(np.abs(x) >= 0.999 * full_scale))


def snr_db(clip: np.ndarray, noise_floor: float, rate: int) -> float:
    """Active speech level (loudest half of the frames) over the recording's noise floor."""
    rms = frame_rms(clip, rate)
    speech = float(np.sqrt(np.mean(np.sort(rms)[len(rms) // 2 :] ** 2)))
    return db(speech) - db(noise_floor)


def noise_floor(x: np.ndarray, rate: int, speech_mask: np.ndarray | None = None) -> float:
    """RMS of the quiet parts: non-speech frames when known, else the 10th percentile frame."""
    rms = frame_rms(x, rate)
    if speech_mask is not None and len(speech_mask) == len(rms) and (~speech_mask).sum() >= 15:
        quiet = rms[~speech_mask]
        return float(np.sqrt(np.mean(np.sort(quiet)[: max(1, len(quiet) * 3 // 4)] ** 2)))
    return float(np.percentile(rms, 10))


def decay_time(x: np.ndarray, rate: int, speech_ends: list[int], floor: float) -> float:
    """Median seconds for the level to fall from the end of speech to 3 dB above the floor.

    A dry close-mic recording falls within ~0.1 s; a reverberant room keeps ringing for longer.
    """
    rms = frame_rms(x, rate)
    hop = int(rate * FRAME_S)
    times = []
    for end in speech_ends:
        i = end // hop
        if i <= 2 or i >= len(rms) - 5:
            continue
        level = rms[max(0, i - 5) : i].max()
        if db(level) - db(floor) < 20:
            continue
        j = i
        while j < len(rms) and rms[j] > floor * 1.41:
            j += 1
        if j < len(rms):
            times.append((j - i) * FRAME_S)
    return float(np.median(times)) if times else 0.0


def f0_track(x: np.ndarray, rate: int, frame_ms: float = 10.0) -> np.ndarray:
    """F0 in Hz every `frame_ms` (WORLD's DIO + StoneMask, 60-500 Hz); 0 where unvoiced."""
    import pyworld

    xd = np.asarray(x, np.float64)
    f0, t = pyworld.dio(xd, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=frame_ms)
    return pyworld.stonemask(xd, f0, t, rate)


def median_f0(x: np.ndarray, rate: int) -> float:
    """Median voiced F0 in Hz; 0 when nothing is voiced."""
    if len(x) < rate // 10:
        return 0.0
    f0 = f0_track(x, rate)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) >= 5 else 0.0


TELEPHONE_HZ = 4000
FULL_BAND = 0  # no channel to imitate


def bandwidth_hz(x: np.ndarray, rate: int) -> float:
    """Highest frequency with energy within 40 dB of the long-term spectrum's peak (100 Hz bins)."""
    n = min(len(x), rate)
    if n < rate // 10:
        return rate / 2
    frames = [x[i : i + n] for i in range(0, len(x) - n + 1, n)] or [x[:n]]
    spec = np.mean([np.abs(np.fft.rfft(f * np.hanning(len(f)))) ** 2 for f in frames], axis=0)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    bins = np.arange(0, rate / 2 + 100, 100)
    level = np.array(
        [
            spec[(freqs >= lo) & (freqs < lo + 100)].mean() if ((freqs >= lo) & (freqs < lo + 100)).any() else 0
            for lo in bins[:-1]
        ]
    )
    db_level = 10 * np.log10(level + 1e-20)
    above = np.flatnonzero(db_level > db_level.max() - 40)
    return float(bins[above[-1] + 1]) if len(above) else rate / 2


def channel_of(bandwidths: list[float]) -> int:
    """The channel a speaker's recordings went through: telephone band (4 kHz) or full band (0).

    Speaker encoders hear bandwidth as strongly as identity: comparing full-band synthesis with
    telephone recordings mostly measures the telephone. Wider codecs (G.722's 7 kHz) barely matter
    to encoders that work at 16 kHz, so only the telephone band is imitated.
    """
    if not bandwidths:
        return FULL_BAND
    return TELEPHONE_HZ if float(np.median(bandwidths)) < TELEPHONE_HZ + 600 else FULL_BAND


def through_channel(x: np.ndarray, rate: int, channel_hz: int) -> np.ndarray:
    """``x`` as heard through a band limit of ``channel_hz`` (0: unchanged)."""
    if not channel_hz or channel_hz * 2 >= rate:
        return x
    from ..audio import resample

    y = resample(resample(np.asarray(x, np.float32), rate, 2 * channel_hz), 2 * channel_hz, rate)
    # the round trip rounds the length twice (110,311 samples came back as 110,310): keep it exact
    return y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
