"""`voxclone eval NAME`: how close a cloned voice sounds to the speaker, on texts and clips it never saw.

Reference: the centroid of the speaker's held-out clips (kept aside at collection, never used to
build). The ceiling is how close those real clips are to each other (leave-one-out); a voice
scores the mean similarity of its EVAL sentences to the reference, heard through the same band
limit as the speaker's recordings when those were telephone-quality. Every clip, real or synthetic, is
heard at the held-out clips' mean loudness (``level_lufs``): loudness is not identity, and Kokoro speaks a
few dB quieter than most recordings. The best stock voice (the closest of the five stock voices nearest
the speaker) is scored the same way beside it.
"""

from __future__ import annotations

import json

import numpy as np

from ..audio import Audio
from .library import VoiceLibrary
from .speaker import centroid, shared_encoder
from .texts import EVAL


def at_loudness(embed, lufs: float):
    """`embed` hearing audio brought to `lufs` first (a plain gain, no peak limit; silence is left as it is)."""
    from .quality import normalize_loudness

    def heard(x: np.ndarray, rate: int) -> np.ndarray:
        return embed(normalize_loudness(x, rate, lufs, peak_dbfs=np.inf), rate)

    return heard


def reference_and_ceiling(embeddings: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid of real clips, and their mean leave-one-out similarity to the others' centroid."""
    ref = centroid(embeddings)
    if len(embeddings) < 2:
        return ref, float("nan")
    loo = [float(embeddings[i] @ centroid(np.delete(embeddings, i, axis=0))) for i in range(len(embeddings))]
    return ref, float(np.mean(loo))


def score_voice(
    tts, voice: str, texts: list[str], encoders: dict, asr=None, lang: str = "en-us", channel_hz: int = 0
) -> dict:
    """Similarity per encoder (``{name: (embed, reference)}``) and, with ``asr``, English WER.

    With ``channel_hz`` the speech is heard through the speaker's band limit first, as their own
    recordings were (``similarity_*``), and as synthesised (``similarity_*_raw``).
    """
    from .quality import through_channel

    out: dict = {}
    audios: list[Audio] = [tts.speak(t, voice=voice, lang=lang) for t in texts]
    for name, (enc, ref) in encoders.items():
        embs = np.stack([enc(through_channel(a.samples, a.sample_rate, channel_hz), a.sample_rate) for a in audios])
        out[f"similarity_{name}"] = round(float(np.mean(embs @ ref)), 4)
        if channel_hz:
            raw = np.stack([enc(a.samples, a.sample_rate) for a in audios])
            out[f"similarity_{name}_raw"] = round(float(np.mean(raw @ ref)), 4)
    if asr is not None:
        counts = sentence_errors(asr, texts, audios)
        out["wer"] = round(sum(e for e, _ in counts) / max(1, sum(n for _, n in counts)), 4)
    return out


def sentence_errors(asr, texts: list[str], audios: list[Audio], language: str = "en") -> list[tuple[int, int]]:
    """(word edits, words) per sentence of speech in `language`, as Whisper hears it."""
    from ..transcribe import word_errors

    return [word_errors(t, asr.transcribe(a, language=language)) for t, a in zip(texts, audios, strict=True)]


def evaluate(name: str, tts=None, library: VoiceLibrary | None = None, with_wer: bool = True) -> dict:
    import soundfile as sf

    from ..api import Voxclone
    from .quality import loudness_lufs
    from .stock import load_profiles

    tts = tts or Voxclone()
    library = library or VoiceLibrary()
    record, _ = library.load(name)
    folder = library.path(name)
    meta = (
        json.loads((folder / "clips" / "clips.json").read_text()) if (folder / "clips" / "clips.json").is_file() else []
    )
    enc = shared_encoder()
    held = [m for m in meta if m.get("use") == "heldout"]
    note = ""
    if not held:
        held = [m for m in meta if m.get("use") == "enroll"]
        note = "no held-out clips (too few recordings): scored against the enrolment clips, so this is optimistic"
    if not held:
        raise ValueError(f"voice {name!r} has no stored clips to compare with")
    clips = [sf.read(folder / "clips" / f"{m['id']}.wav", dtype="float32") for m in held]
    level = float(np.mean([loudness_lufs(x, rate) for x, rate in clips]))
    embed = at_loudness(enc.embed, level)
    ref, ceiling = reference_and_ceiling(np.stack([embed(x, rate) for x, rate in clips]))
    asr = None
    if with_wer:
        from ..transcribe import Transcriber

        asr = Transcriber()
    encoders = {"resemblyzer": (embed, ref)}
    channel = int(record.get("target", {}).get("channel_hz", 0))
    result = {
        "voice": name,
        "quality": record.get("quality"),
        "heldout_clips": len(held),
        "ceiling": round(ceiling, 4),
        "level_lufs": round(level, 1),
    }
    if channel:
        result["channel_hz"] = channel
    result.update(score_voice(tts, name, EVAL, encoders, asr, channel_hz=channel))
    profiles = load_profiles()
    enrolled = np.load(folder / "embedding.npy")
    english = [i for i, n in enumerate(profiles.names) if n[:1] in "ab"]
    top = sorted(english, key=lambda i: -float(profiles.embeddings_for(channel)[i] @ enrolled))[:5]
    best_stock, best_score = None, None
    for i in top:
        s = score_voice(tts, profiles.names[i], EVAL, encoders, channel_hz=channel)
        if best_score is None or s["similarity_resemblyzer"] > best_score["similarity_resemblyzer"]:
            best_stock, best_score = profiles.names[i], s
    if asr is not None:
        best_score = score_voice(tts, best_stock, EVAL, encoders, asr, channel_hz=channel)
    result["best_stock"] = best_stock
    result.update({f"stock_{k}": v for k, v in best_score.items()})
    if note:
        result["note"] = note
    return result
