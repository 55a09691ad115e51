"""What each stock voice sounds like, measured once: speaker embedding, pitch, speaking rate.

Instant cloning compares the speaker with these profiles, so they ship precomputed in
``data/stock_profiles.npz`` (54 voices x 4 texts of synthesis take about two minutes to redo:
``python -m voxclone.cloning.stock``). Style-space statistics for fitting are computed from the
packs themselves on the fly (cheap).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .texts import FIT

PROFILE_TEXTS = FIT[:4]
PROFILE_FILE = Path(__file__).with_name("data") / "stock_profiles.npz"


@dataclass
class StockProfiles:
    names: list[str]
    embeddings: np.ndarray  # (n, 256) unit vectors
    f0_hz: np.ndarray  # (n,)
    rate: np.ndarray  # (n,) phonemes per second of speech (VAD-measured, as for real clips)
    telephone: np.ndarray | None = None  # (n, 256) embeddings heard through the telephone band

    def index(self, name: str) -> int:
        return self.names.index(name)

    def embeddings_for(self, channel_hz: int) -> np.ndarray:
        return self.telephone if channel_hz and self.telephone is not None else self.embeddings


def measure(tts, voice: str, lang: str = "en-us", pitch: float = 0.0, texts: list[str] | None = None):
    """(embedding, median F0, phonemes per second, telephone-band embedding) of a voice speaking ``texts``."""
    from .quality import TELEPHONE_HZ, median_f0, speech_seconds, through_channel
    from .speaker import centroid, shared_encoder

    enc = shared_encoder()
    g2p = tts._g2p_for(lang)
    embs, phone, f0s, phonemes, seconds = [], [], [], 0, 0.0
    for text in texts or PROFILE_TEXTS:
        audio = tts._render(text, voice=voice, lang=lang, pitch=pitch)
        embs.append(enc.embed(audio.samples, audio.sample_rate))
        phone.append(enc.embed(through_channel(audio.samples, audio.sample_rate, TELEPHONE_HZ), audio.sample_rate))
        f0s.append(median_f0(audio.samples, audio.sample_rate))
        phonemes += len(g2p(text).replace(" ", ""))
        seconds += speech_seconds(audio.samples, audio.sample_rate)
    return centroid(np.stack(embs)), float(np.median(f0s)), phonemes / seconds, centroid(np.stack(phone))


def compute_profiles(tts) -> StockProfiles:
    names = sorted(v.name for v in tts.voices() if v.kind == "stock")
    rows = [measure(tts, n) for n in names]
    return StockProfiles(
        names,
        np.stack([r[0] for r in rows]),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[2] for r in rows], np.float32),
        np.stack([r[3] for r in rows]),
    )


def load_profiles(path: Path = PROFILE_FILE) -> StockProfiles:
    with np.load(path) as z:
        tel = z["telephone"] if "telephone" in z.files else None
        return StockProfiles([str(n) for n in z["names"]], z["embeddings"], z["f0_hz"], z["rate"], tel)


def save_profiles(p: StockProfiles, path: Path = PROFILE_FILE) -> None:
    np.savez_compressed(
        path, names=np.array(p.names), embeddings=p.embeddings, f0_hz=p.f0_hz, rate=p.rate, telephone=p.telephone
    )


if __name__ == "__main__":
    from ..api import Voxclone

    profiles = compute_profiles(Voxclone().load())
    save_profiles(profiles)
    print(f"wrote {PROFILE_FILE} ({len(profiles.names)} voices)")
