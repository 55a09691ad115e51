"""The stock Kokoro voices: what each one speaks, and how style vectors are picked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Kokoro voice names start with a language letter and a gender letter (af_heart: American female).
LANG_BY_PREFIX = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "zh",
}
GENDER_BY_LETTER = {"f": "female", "m": "male"}

# Upstream's overall grades (hexgrad/Kokoro-82M VOICES.md), used to order the list.
GRADES = {
    "af_heart": "A",
    "af_bella": "A-",
    "af_nicole": "B-",
    "bf_emma": "B-",
    "ff_siwis": "B-",
    "af_aoede": "C+",
    "af_kore": "C+",
    "af_sarah": "C+",
    "am_fenrir": "C+",
    "am_michael": "C+",
    "am_puck": "C+",
    "jf_alpha": "C+",
    "af_alloy": "C",
    "af_nova": "C",
    "bf_isabella": "C",
    "bm_fable": "C",
    "bm_george": "C",
    "hf_alpha": "C",
    "hf_beta": "C",
    "hm_omega": "C",
    "hm_psi": "C",
    "if_sara": "C",
    "im_nicola": "C",
    "jf_gongitsune": "C",
    "jf_tebukuro": "C",
    "af_sky": "C-",
    "jf_nezumi": "C-",
    "jm_kumo": "C-",
    "bm_lewis": "D+",
    "af_jessica": "D",
    "af_river": "D",
    "am_echo": "D",
    "am_eric": "D",
    "am_liam": "D",
    "am_onyx": "D",
    "bf_alice": "D",
    "bf_lily": "D",
    "bm_daniel": "D",
    "zf_xiaobei": "D",
    "zf_xiaoni": "D",
    "zf_xiaoxiao": "D",
    "zf_xiaoyi": "D",
    "zm_yunjian": "D",
    "zm_yunxi": "D",
    "zm_yunxia": "D",
    "zm_yunyang": "D",
    "am_santa": "D-",
    "am_adam": "F+",
}
DEFAULT_VOICE = "af_heart"


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    language: str
    gender: str
    kind: str = "stock"
    grade: str = ""


def describe(name: str, kind: str = "stock") -> VoiceInfo:
    """Language and gender of a Kokoro-style voice name (``?`` when the name does not say)."""
    lang = LANG_BY_PREFIX.get(name[:1], "?") if len(name) > 2 and name[2] == "_" else "?"
    gender = GENDER_BY_LETTER.get(name[1:2], "?") if lang != "?" else "?"
    return VoiceInfo(name, lang, gender, kind, GRADES.get(name, ""))


def style_for(pack: np.ndarray, n_tokens: int) -> np.ndarray:
    """The (1, 256) style row Kokoro was trained to use for an utterance of ``n_tokens`` phonemes."""
    row = min(max(n_tokens, 1), len(pack)) - 1
    return np.ascontiguousarray(pack[row].reshape(1, 256), dtype=np.float32)


def blend(packs: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted mix of style packs (weights are normalised)."""
    w = np.asarray(weights, np.float64)
    if len(packs) != len(w) or len(w) == 0 or w.sum() <= 0:
        raise ValueError("blend needs one positive weight per pack")
    w = w / w.sum()
    return sum(p.astype(np.float64) * wi for p, wi in zip(packs, w, strict=False)).astype(np.float32)
