"""`voxclone bench watermark`: does the mark survive what audio goes through, and what does it cost?

Generated clips (stock voices, the benchmark sentences) are marked, then attacked: lossy codecs
(FFmpeg through PyAV), resampling, noise, gain, speed, cropping. Detection rate per attack; false
positives on real recordings (devdata) and on unmarked synthesis; quality cost as the DNSMOS
(speechmos, ONNX) difference between unmarked and marked clips, and the DistillMOS one where that is
installed (``pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0``: its declared torchaudio
does not load beside our torch, and it needs it only to read files). The two predictors disagree
about where the mark may sit, so both are reported.
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np

from ..api import Voxclone
from ..audio import resample
from ..safeguards.watermark import Watermarker
from . import devdata
from .sentences import SENTENCES

RATE = 24_000
VOICES = ("af_heart", "am_michael", "bf_emma", "bm_george", "af_bella", "am_adam", "bf_isabella", "bm_lewis")


def _codec(x: np.ndarray, rate: int, codec: str, container: str, bit_rate: int, codec_rate: int) -> np.ndarray:
    """Encode and decode through FFmpeg (PyAV) at ``bit_rate``; back at ``rate``."""
    import av

    y = resample(x, rate, codec_rate)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=codec_rate)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.rate = codec_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        res = av.AudioResampler(format="flt", layout="mono", rate=codec_rate)
        parts = [o.to_ndarray().reshape(-1) for f in inp.decode(audio=0) for o in res.resample(f)]
    return resample(np.concatenate(parts).astype(np.float32), codec_rate, rate)


def _noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(x**2)) / 10 ** (snr_db / 10)
    return (x + rng.standard_normal(len(x)).astype(np.float32) * np.sqrt(power)).astype(np.float32)


def _speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tape-style: tempo and pitch together)."""
    return resample(x, int(RATE * factor), RATE)


def _tempo(x: np.ndarray, factor: float) -> np.ndarray:
    """``factor`` times faster at the same pitch (phase vocoder, as media players do)."""
    import librosa

    return librosa.effects.time_stretch(x, rate=factor).astype(np.float32)


def _crop(x: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * RATE)
    if len(x) <= n:
        return x
    start = int(rng.integers(0, len(x) - n))
    return x[start : start + n]


def attacks(rng: np.random.Generator) -> dict:
    return {
        "clean": lambda x: x,
        "mp3_128k": lambda x: _codec(x, RATE, "libmp3lame", "mp3", 128_000, 44_100),
        "mp3_64k": lambda x: _codec(x, RATE, "libmp3lame", "mp3", 64_000, 44_100),
        "opus_32k": lambda x: _codec(x, RATE, "libopus", "ogg", 32_000, 48_000),
        "resample_16k": lambda x: resample(resample(x, RATE, 16_000), 16_000, RATE),
        "resample_8k": lambda x: resample(resample(x, RATE, 8_000), 8_000, RATE),
        "noise_20db": lambda x: _noise(x, 20.0, rng),
        "gain_plus6db": lambda x: np.clip(x * 10 ** (6 / 20), -1, 1).astype(np.float32),
        "gain_minus6db": lambda x: (x * 10 ** (-6 / 20)).astype(np.float32),
        "speed_plus10pct": lambda x: _speed(x, 1.1),
        "speed_minus10pct": lambda x: _speed(x, 0.9),
        "tempo_plus10pct": lambda x: _tempo(x, 1.1),
        "tempo_minus10pct": lambda x: _tempo(x, 0.9),
        "crop_3s": lambda x: _crop(x, 3.0, rng),
    }


def _dnsmos(x: np.ndarray) -> float:
    from speechmos import dnsmos

    y = np.clip(resample(x, RATE, 16_000), -1.0, 1.0)  # resampling may overshoot full scale a little
    return float(dnsmos.run(y, sr=16_000, return_df=False)["ovrl_mos"])


_distill = None


def _distillmos(x: np.ndarray) -> float | None:
    """DistillMOS of ``x``, or None where the package is not installed."""
    global _distill
    if _distill is None:
        from ..safeguards.watermark import torchaudio_or_stand_in

        try:  # it imports torchaudio at its top, for its file-reading helpers only
            with torchaudio_or_stand_in(), contextlib.redirect_stdout(io.StringIO()):
                import distillmos

                _distill = distillmos.ConvTransformerSQAModel().eval()
        except ImportError:
            _distill = False
    if _distill is False:
        return None
    import torch

    y = np.clip(resample(x, RATE, 16_000), -1.0, 1.0)
    with torch.inference_mode():
        return float(_distill(torch.from_numpy(y)[None]).item())


def run(clips: int = 200, real: int = 300, mos_clips: int = 60, seed: int = 0, progress=None) -> dict:
    say = progress or (lambda m: None)
    rng = np.random.default_rng(seed)
    tts = Voxclone(watermark=False)  # the benchmark marks clips itself, to keep the unmarked twin
    wm = Watermarker().load()
    texts = [t for t, _ in SENTENCES]
    plain, marked = [], []
    t0 = time.perf_counter()
    embed_s = audio_s = 0.0
    for i in range(clips):
        say(f"clip {i + 1}/{clips}") if i % 20 == 0 else None
        a = tts._render(texts[i % len(texts)], voice=VOICES[i % len(VOICES)])
        t = time.perf_counter()
        m = wm.embed(a.samples, RATE)
        embed_s += time.perf_counter() - t
        audio_s += a.duration
        plain.append(a.samples)
        marked.append(m)
    synth_s = time.perf_counter() - t0
    detection, scores, plain_detection = {}, {}, {}
    for name, attack in attacks(rng).items():
        say(f"attack {name}")
        verdicts = [wm.detect(attack(m), RATE) for m in marked]
        conf = np.array([v.confidence for v in verdicts])
        detection[name] = round(float(np.mean([v.marked for v in verdicts])), 4)
        scores[name] = conf
        # the search runs only when the unchanged-speed check fails, so this is the plain detector
        plain_detection[name] = round(float(np.mean([v.marked and v.speed == 1.0 for v in verdicts])), 4)
    say("false positives: unmarked synthesis")
    synth_verdicts = [wm.detect(x, RATE) for x in plain]
    fp_synth = np.array([v.confidence for v in synth_verdicts])
    fp_synth_marked = np.array([v.marked for v in synth_verdicts])
    say("false positives: real recordings")
    per = max(1, -(-real // len(devdata.SPEAKERS))) + 5  # a few clips are too short to judge
    real_conf, real_marked = [], []
    for spk in devdata.SPEAKERS:
        for c in devdata.fetch(spk)[:: max(1, len(devdata.fetch(spk)) // per)][:per]:
            x = devdata.load(c, 16_000)
            if len(x) >= 8_000:
                v = wm.detect(x, 16_000)
                real_conf.append(v.confidence)
                real_marked.append(v.marked)
    real_conf, real_marked = np.array(real_conf), np.array(real_marked)
    say("quality (DNSMOS)")
    idx = rng.choice(len(plain), size=min(mos_clips, len(plain)), replace=False)
    mos_plain = np.array([_dnsmos(plain[i]) for i in idx])
    mos_marked = np.array([_dnsmos(marked[i]) for i in idx])
    distill = [(_distillmos(plain[i]), _distillmos(marked[i])) for i in idx]
    distill = np.array(distill, np.float64) if distill and distill[0][0] is not None else None
    snr = [10 * np.log10(np.sum(p**2) / max(1e-12, np.sum((p - m) ** 2))) for p, m in zip(plain, marked, strict=True)]
    fpr_real = float(np.mean(real_marked))
    fpr_synth = float(np.mean(fp_synth_marked))
    result = {
        "clips": clips,
        "audio_s": round(audio_s, 1),
        "detection": detection,
        "detection_without_speed_search": plain_detection,
        "misses": {k: int(round((1 - detection[k]) * len(marked))) for k in scores},
        "min_confidence": {k: round(float(v.min()), 4) for k, v in scores.items()},
        "fpr": round((fpr_real * len(real_conf) + fpr_synth * len(fp_synth)) / (len(real_conf) + len(fp_synth)), 4),
        "fpr_real": round(fpr_real, 4),
        "fpr_unmarked_synthesis": round(fpr_synth, 4),
        "real_clips": len(real_conf),
        "max_confidence_real": round(float(real_conf.max()), 4),
        "max_confidence_unmarked_synthesis": round(float(fp_synth.max()), 4),
        "dnsmos_unmarked": round(float(mos_plain.mean()), 3),
        "dnsmos_marked": round(float(mos_marked.mean()), 3),
        "mos_drop": round(float(mos_plain.mean() - mos_marked.mean()), 3),
        "mos_clips": len(idx),
        "distillmos_unmarked": None if distill is None else round(float(distill[:, 0].mean()), 3),
        "distillmos_marked": None if distill is None else round(float(distill[:, 1].mean()), 3),
        "distillmos_drop": None if distill is None else round(float(distill[:, 0].mean() - distill[:, 1].mean()), 3),
        "snr_db_mean": round(float(np.mean(snr)), 1),
        "embed_rtf": round(embed_s / audio_s, 4),
        "synthesis_s": round(synth_s, 1),
    }
    table = [["attack", "detected", "misses", "min confidence", "without speed search"]]
    for k in detection:
        table.append(
            [
                k,
                f"{detection[k]:.1%}",
                result["misses"][k],
                f"{result['min_confidence'][k]:.3f}",
                f"{plain_detection[k]:.1%}",
            ]
        )
    notes = [
        f"false positives: {fpr_real:.2%} of {len(real_conf)} real clips (max confidence {real_conf.max():.3f}), "
        f"{fpr_synth:.2%} of {len(fp_synth)} unmarked synthesis (max {fp_synth.max():.3f})",
        f"DNSMOS overall: unmarked {mos_plain.mean():.3f}, marked {mos_marked.mean():.3f} "
        f"(drop {result['mos_drop']:+.3f}, {len(idx)} clips); mark SNR {result['snr_db_mean']:.1f} dB; "
        f"embedding costs RTF {result['embed_rtf']:.3f}",
        "DistillMOS: not installed (pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0)"
        if distill is None
        else f"DistillMOS: unmarked {result['distillmos_unmarked']:.3f}, marked {result['distillmos_marked']:.3f} "
        f"(drop {result['distillmos_drop']:+.3f}, same clips)",
    ]
    return {
        "title": f"watermark robustness ({clips} clips, {audio_s / 60:.1f} min)",
        "table": table,
        "notes": notes,
        "json": result,
    }
