"""Build a voice for a speaker: pick and blend stock styles (instant), then fit the style (best).

The engine's only handle on identity is a 256-d style vector (first half: timbre, used by the
decoder; second half: prosody, used by the duration/F0 predictor). Both levels work in that
space and judge candidates by listening: synthesise, embed with the speaker encoder, compare
with the speaker's own recordings.

* instant: stock voices ranked by their (precomputed) embedding similarity and pitch distance
  to the speaker; the best one and a blend of the best three are tried, with pitch and speaking
  rate matched; the one that sounds closest on two sentences wins (about 5 s).
* best: CMA-ES on an offset from the instant voice, in the principal directions of the stock
  voices (timbre and prosody halves apart, offsets measured in stock spreads and penalised beyond
  1.5 of them, because far outside the stock cloud speech degrades), plus a pitch offset. Each
  generation listens to two sentences drawn from a rotating pool (so no sentence is over-fitted,
  and twice as many candidates fit the budget as with three); after every generation the current
  mean is scored on separate selection sentences and the best of those is kept (early
  stopping). Ctrl-C keeps the best so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..engine.voices import blend, describe
from .quality import median_f0, through_channel
from .speaker import SpeakerEncoder, shared_encoder
from .stock import load_profiles
from .texts import FIT, SELECT

FIT_VOICE = "__voxclone_fit__"
SPREAD_LIMIT = 1.5


@dataclass
class Target:
    """What the speaker sounds like: reference embedding, median F0, phonemes per second."""

    embedding: np.ndarray
    f0_hz: float = 0.0
    rate: float = 0.0
    channel_hz: int = 0  # the recordings' band limit, imitated when listening (0: full band)


@dataclass
class Built:
    pack: np.ndarray
    speed: float = 1.0
    pitch: float = 0.0
    base: dict[str, float] = field(default_factory=dict)
    similarity: float = 0.0  # on the SELECT sentences
    evaluations: int = 0
    seconds: float = 0.0
    log: list[dict] = field(default_factory=list)
    stopped: str = ""
    decoder: np.ndarray | None = None  # decoder adapter (gradient-trained voices only)
    intelligibility: dict | None = None  # the trained voice's check (see .intelligibility)


class VoiceBuilder:
    """Listens to candidate styles with a :class:`~voxclone.Voxclone` and a speaker encoder."""

    def __init__(self, tts, lang: str = "en-us", encoder: SpeakerEncoder | None = None):
        self.tts = tts
        self.lang = lang  # what the voice will speak: the candidates and the sentences it is fitted on
        self.fit_texts, self.select_texts = texts_for(lang)
        self.encoder = encoder or shared_encoder()
        self.profiles = load_profiles()
        self.evaluations = 0

    # ----------------------------------------------------------------- listening
    def listen(
        self,
        pack: np.ndarray,
        texts: list[str],
        speed: float = 1.0,
        pitch: float = 0.0,
        channel_hz: int = 0,
        decoder: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Embeddings of the style speaking each text (through the speaker's channel, if any)."""
        speak = self.speaker(pack, speed, pitch, decoder)
        out = []
        for text in texts:
            audio = speak(text)
            x = through_channel(audio.samples, audio.sample_rate, channel_hz)
            out.append(self.encoder.embed(x, audio.sample_rate))
        self.evaluations += 1
        return out

    def speaker(
        self, pack: np.ndarray, speed: float = 1.0, pitch: float = 0.0, decoder: np.ndarray | None = None
    ) -> Callable[[str], object]:
        """A function speaking a text in this style (registered again on each call, so others made since
        do not take its place)."""

        def speak(text: str):
            self.tts.add_voice(FIT_VOICE, pack, self.lang, kind="fitting", decoder=decoder)
            return self.tts._render(text, voice=FIT_VOICE, speed=speed, pitch=pitch)

        return speak

    def similarity(
        self,
        target: Target,
        pack: np.ndarray,
        texts: list[str],
        speed: float = 1.0,
        pitch: float = 0.0,
        decoder: np.ndarray | None = None,
    ) -> float:
        embs = self.listen(pack, texts, speed, pitch, target.channel_hz, decoder)
        return float(np.mean([e @ target.embedding for e in embs]))

    def _candidates(self) -> list[int]:
        langs = {"en-us", "en-gb"} if self.lang.startswith("en") else {self.lang}
        idx = [i for i, n in enumerate(self.profiles.names) if describe(n).language in langs and n in self._stock()]
        if len(idx) < 3:  # few packs for this language: English packs carry the timbre too
            idx += [
                i for i, n in enumerate(self.profiles.names) if describe(n).language.startswith("en") and i not in idx
            ]
        return idx

    def _stock(self) -> dict[str, np.ndarray]:
        return self.tts._stock()

    # ----------------------------------------------------------------- instant
    def instant(self, target: Target) -> Built:
        t0 = time.perf_counter()
        p = self.profiles
        idx = self._candidates()
        sims = p.embeddings_for(target.channel_hz)[idx] @ target.embedding
        if target.f0_hz > 0:
            sims = sims - 0.15 * np.abs(np.log(np.maximum(p.f0_hz[idx], 1) / target.f0_hz))
        order = [idx[i] for i in np.argsort(-sims)[:3]]
        top = np.sort(sims)[::-1][:3]
        weights = np.exp((top - top[0]) / 0.02)
        weights = weights / weights.sum()
        stock = self._stock()
        options = [({p.names[order[0]]: 1.0}, stock[p.names[order[0]]])]
        if len(order) > 1:
            rows = min(len(stock[p.names[i]]) for i in order)
            mix = blend([stock[p.names[i]][:rows] for i in order], list(weights))
            options.append(({p.names[i]: round(float(w), 3) for i, w in zip(order, weights, strict=True)}, mix))
        texts = self.select_texts[:1]  # one sentence per candidate keeps an instant voice under 10 s
        best: Built | None = None
        log = []
        for base, pack in options:
            f0 = float(sum(w * p.f0_hz[p.index(n)] for n, w in base.items()))
            rate = float(sum(w * p.rate[p.index(n)] for n, w in base.items()))
            pitch = _clamp(12 * math.log2(target.f0_hz / f0), -4, 4) if target.f0_hz > 0 and f0 > 0 else 0.0
            speed = _clamp(target.rate / rate, 0.8, 1.25) if target.rate > 0 and rate > 0 else 1.0
            for pt in sorted({0.0, round(pitch, 2)}):
                sim = self.similarity(target, pack, texts, speed, pt)
                log.append({"base": base, "pitch": pt, "speed": round(speed, 3), "similarity": round(sim, 4)})
                if best is None or sim > best.similarity:
                    best = Built(pack, speed, pt, base, sim)
        best.log = log
        best.evaluations = self.evaluations
        best.seconds = time.perf_counter() - t0
        return best

    # ----------------------------------------------------------------- best
    def _basis(self, timbre: int = 10, prosody: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Principal directions of the stock styles, each half apart, scaled to one stock spread."""
        stock = self._stock()
        means = np.stack([stock[n][10:150].mean(axis=(0, 1)) for n in sorted(stock)])  # (n, 256)
        dirs = []
        for lo, hi, k in ((0, 128, timbre), (128, 256, prosody)):
            x = means[:, lo:hi] - means[:, lo:hi].mean(axis=0)
            _, s, vt = np.linalg.svd(x, full_matrices=False)
            std = s / math.sqrt(max(1, len(x) - 1))
            for j in range(k):
                d = np.zeros(256, np.float32)
                d[lo:hi] = vt[j] * std[j]
                dirs.append(d)
        return np.stack(dirs), np.array([0] * timbre + [1] * prosody)

    def best(
        self,
        target: Target,
        start: Built,
        seed: int = 0,
        budget_s: float = 240.0,
        max_evals: int | None = None,
        texts_per_eval: int = 2,
        timbre: int = 10,
        prosody: int = 4,
        spread_limit: float = SPREAD_LIMIT,
        popsize: int | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> Built:
        import cma

        t0 = time.perf_counter()
        dirs, _ = self._basis(timbre, prosody)
        dim = len(dirs) + 1  # + pitch offset (1 unit = 2 semitones)
        rng = np.random.default_rng(seed)

        def decode(z: np.ndarray) -> tuple[np.ndarray, float]:
            delta = (np.asarray(z[:-1], np.float32) @ dirs).reshape(1, 1, 256)
            return start.pack + delta, _clamp(start.pitch + 2.0 * float(z[-1]), -6, 6)

        def penalty(z: np.ndarray) -> float:
            return 0.5 * max(0.0, float(np.linalg.norm(z[:-1])) - spread_limit) ** 2 + 0.05 * float(z[-1]) ** 2

        best = Built(start.pack, start.speed, start.pitch, dict(start.base), start.similarity)
        best.similarity = self.similarity(target, start.pack, self.select_texts, start.speed, start.pitch)
        log: list[dict] = [{"step": 0, "select": round(best.similarity, 4), "note": "instant voice"}]
        es = cma.CMAEvolutionStrategy(
            np.zeros(dim),
            0.4,
            {"seed": seed + 1, "bounds": [-3, 3], "verbose": -9, **({"popsize": popsize} if popsize else {})},
        )
        stopped = "budget"
        step = 0
        gen_s = 0.0
        try:
            while not es.stop():
                if step and time.perf_counter() - t0 + gen_s > budget_s:
                    break  # another generation would overrun the budget
                step += 1
                g0 = time.perf_counter()
                texts = list(rng.choice(self.fit_texts, size=texts_per_eval, replace=False))
                zs = es.ask()
                losses = []
                fit_sims = []
                for z in zs:
                    pack, pitch = decode(z)
                    sim = self.similarity(target, pack, texts, start.speed, pitch)
                    fit_sims.append(sim)
                    losses.append(-sim + penalty(z))
                es.tell(zs, losses)
                pack, pitch = decode(es.mean)
                sel = self.similarity(target, pack, self.select_texts, start.speed, pitch)
                entry = {
                    "step": step,
                    "evaluations": self.evaluations,
                    "fit_best": round(max(fit_sims), 4),
                    "fit_mean": round(float(np.mean(fit_sims)), 4),
                    "select": round(sel, 4),
                    "spread": round(float(np.linalg.norm(es.mean[:-1])), 3),
                    "pitch": round(pitch, 2),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                if sel > best.similarity:
                    best = Built(pack, start.speed, pitch, dict(start.base), sel)
                    entry["kept"] = True
                log.append(entry)
                if progress:
                    progress({**entry, "best": best.similarity})
                gen_s = time.perf_counter() - g0
                if max_evals is not None and self.evaluations >= max_evals:
                    stopped = "evaluations"
                    break
            else:
                stopped = "converged"
        except KeyboardInterrupt:
            stopped = "interrupted (kept the best so far)"
        best.log = log
        best.evaluations = self.evaluations
        best.seconds = time.perf_counter() - t0
        best.stopped = stopped
        return best


def texts_for(lang: str) -> tuple[list[str], list[str]]:
    """(fitting, selection) sentences in a language: the English pools, else voice-banking prompts."""
    if lang.startswith("en"):
        return FIT, SELECT
    from .texts import prompts

    try:
        lines = [p for p in prompts(lang) if 5 <= len(p.split()) <= 12]
    except ValueError:
        return FIT, SELECT
    return lines[:12], lines[12:16]


def target_from(collection, g2p=None) -> Target:
    """The speaker's reference from a :class:`~voxclone.cloning.collect.Collection`."""
    clips = collection.enroll or collection.heldout
    f0s = [c.f0_hz for c in clips if c.f0_hz > 0]
    rate = 0.0
    if g2p is not None:
        phonemes = sum(len(g2p(c.text).replace(" ", "")) for c in clips if c.text.strip())
        seconds = sum(c.duration for c in clips if c.text.strip())
        rate = phonemes / seconds if seconds else 0.0
    return Target(collection.embedding, float(np.median(f0s)) if f0s else 0.0, rate, collection.channel_hz)


def measure_f0(audio) -> float:
    return median_f0(audio.samples, audio.sample_rate)


def _clamp(x: float, lo: float, hi: float) -> float:
    return float(min(hi, max(lo, x)))
