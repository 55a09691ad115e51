"""`voxclone bench consent`: is the consent voice check right, and can clones fool a verifier?

Real speakers (devdata): each one's enrolment centroid (~20 s, as `clone` builds it) is tried against
"consent recordings" made of the speaker's other clips joined to ~8 s (genuine) and of every other
speaker's (impostors). Reported: the equal-error threshold and rate, and false accepts/rejects at
the threshold consent uses. Then the authentication risk: instant and best (trained) clones of each speaker speak
held-out sentences; how often a verifier at the equal-error threshold accepts them as the speaker,
and how many of those outputs `detect` flags.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..api import Voxclone
from ..cloning.clone import clone
from ..cloning.library import VoiceLibrary
from ..cloning.speaker import centroid, shared_encoder
from ..cloning.texts import EVAL
from ..safeguards.consent import SPEAKER_THRESHOLD
from ..safeguards.watermark import shared as shared_watermarker
from . import devdata

RATE = 16_000


def _trials(clips: list[devdata.Clip], seconds: float, limit: int) -> list[np.ndarray]:
    out, cur, dur = [], [], 0.0
    for c in clips:
        cur.append(devdata.load(c, RATE))
        dur += c.duration
        if dur >= seconds:
            out.append(np.concatenate(cur))
            cur, dur = [], 0.0
            if len(out) >= limit:
                break
    return out


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(equal error rate, threshold where false accepts and false rejects meet).

    When the scores separate, the threshold is the midpoint of the gap between them.
    """
    if genuine.min() > impostor.max():
        return 0.0, float((genuine.min() + impostor.max()) / 2)
    best, rate = (1.0, 0.0), 1.0
    for t in np.unique(np.concatenate([genuine, impostor])):
        far, frr = float(np.mean(impostor >= t)), float(np.mean(genuine < t))
        if abs(far - frr) < best[0]:
            best, rate = (abs(far - frr), float(t)), (far + frr) / 2
    return rate, best[1]


def clone_set(speakers: list[str] | None, clone_speakers: list[str] | None) -> list[str]:
    """The speakers to clone (default: every tested one); ValueError for one not among `speakers`."""
    speakers = speakers or list(devdata.SPEAKERS)
    cloned = clone_speakers or speakers
    unknown = [s for s in cloned if s not in speakers]
    if unknown:
        raise ValueError(f"clone speakers {unknown} are not among the speakers tested ({', '.join(speakers)})")
    return cloned


def run(
    speakers: list[str] | None = None,
    trial_seconds: float = 8.0,
    trials: int = 12,
    clones: bool = True,
    sentences: int = 6,
    qualities: tuple[str, ...] = ("instant", "best"),
    progress=None,
    clone_speakers: list[str] | None = None,
) -> dict:
    """`clone_speakers` (default: all of `speakers`) limits the clone test to some of them, since a best
    clone takes a full build each; the verifier's threshold still comes from every speaker's trials."""
    say = progress or (lambda m: None)
    speakers = speakers or list(devdata.SPEAKERS)
    cloned = clone_set(speakers, clone_speakers)
    enc = shared_encoder()
    enrol: dict[str, np.ndarray] = {}
    tries: dict[str, list[np.ndarray]] = {}
    enrol_clips: dict[str, list] = {}
    for spk in speakers:
        say(f"{spk}: fetching")
        enroll, held = devdata.split(spk, enroll_seconds=20.0, heldout=8 * trials)
        enrol_clips[spk] = enroll
        enrol[spk] = centroid(np.stack([enc.embed(devdata.load(c, RATE), RATE) for c in enroll]))
        tries[spk] = [enc.embed(x, RATE) for x in _trials(held, trial_seconds, trials)]
    genuine, impostor, per = [], [], {}
    for spk in speakers:
        g = [float(np.dot(e, enrol[spk])) for e in tries[spk]]
        i = [float(np.dot(e, enrol[spk])) for other in speakers if other != spk for e in tries[other]]
        genuine += g
        impostor += i
        per[spk] = {
            "trials": len(g),
            "genuine_mean": round(float(np.mean(g)), 4),
            "genuine_min": round(min(g), 4),
            "impostor_max": round(max(i), 4),
        }
    g, i = np.array(genuine), np.array(impostor)
    rate, threshold = eer(g, i)
    at = SPEAKER_THRESHOLD
    result = {
        "speakers": per,
        "genuine_trials": len(g),
        "impostor_trials": len(i),
        "trial_seconds": trial_seconds,
        "eer": round(rate, 4),
        "eer_threshold": round(threshold, 4),
        "consent_threshold": at,
        "genuine_min": round(float(g.min()), 4),
        "impostor_max": round(float(i.max()), 4),
        "far": round(float(np.mean(i >= at)), 4),
        "frr": round(float(np.mean(g < at)), 4),
    }
    if clones:
        wm = shared_watermarker()
        levels = {}
        with tempfile.TemporaryDirectory(prefix="voxclone-bench-") as tmp:
            lib = VoiceLibrary(Path(tmp) / "voices")
            tts = Voxclone(library=lib).load()
            for spk in cloned:
                folder = Path(tmp) / spk
                folder.mkdir()
                for c in enrol_clips[spk]:
                    sf.write(folder / f"{c.path.stem}.wav", devdata.load(c, RATE), RATE)
                for quality in qualities:
                    say(f"{spk}: cloning ({quality})")
                    name = f"{spk}-{quality}"
                    clone(name, [folder], quality=quality, waiver="benchmark", tts=tts, library=lib)
                    lvl = levels.setdefault(
                        quality, {"accepted": 0, "detected": 0, "outputs": 0, "max_similarity": -1.0}
                    )
                    acc = 0
                    for text in EVAL[:sentences]:
                        audio = tts.speak(text, voice=name).resample(RATE)
                        sim = float(np.dot(enc.embed(audio.samples, RATE), enrol[spk]))
                        acc += sim >= threshold
                        lvl["max_similarity"] = max(lvl["max_similarity"], sim)
                        lvl["detected"] += wm.detect(audio.samples, RATE).marked
                        lvl["outputs"] += 1
                    lvl["accepted"] += acc
                    per[spk][f"clone_accepted_{quality}"] = f"{acc}/{sentences}"
        for lvl in levels.values():
            lvl["max_similarity"] = round(lvl["max_similarity"], 4)
            lvl["accept_rate"] = round(lvl["accepted"] / lvl["outputs"], 4)
            lvl["detected_rate"] = round(lvl["detected"] / lvl["outputs"], 4)
        total = sum(v["outputs"] for v in levels.values())
        result.update(
            clone_levels=levels,
            clone_outputs=total,
            clone_accept_rate=round(sum(v["accepted"] for v in levels.values()) / total, 4),
            clone_max_similarity=max(v["max_similarity"] for v in levels.values()),
            clone_detected_rate=round(sum(v["detected"] for v in levels.values()) / total, 4),
        )
    table = [
        ["speaker", "trials", "genuine mean", "genuine min", "max impostor"]
        + [f"{q} clones accepted" for q in qualities]
    ]
    for spk, row in per.items():
        table.append(
            [
                spk,
                row["trials"],
                f"{row['genuine_mean']:.3f}",
                f"{row['genuine_min']:.3f}",
                f"{row['impostor_max']:.3f}",
            ]
            + [row.get(f"clone_accepted_{q}", "-") for q in qualities]
        )
    notes = [
        f"EER {rate:.1%} at threshold {threshold:.3f} ({len(g)} genuine, {len(i)} impostor trials of ~{trial_seconds:.0f} s)",
        f"consent threshold {at:.2f}: false accepts {result['far']:.1%}, false rejects {result['frr']:.1%}",
    ]
    if clones:
        for q, lvl in result["clone_levels"].items():
            notes.append(
                f"{q} clones accepted as the speaker at the EER threshold: {lvl['accept_rate']:.1%} of "
                f"{lvl['outputs']} (highest similarity {lvl['max_similarity']:.3f}); flagged by detect: "
                f"{lvl['detected_rate']:.1%}"
            )
    return {"title": "consent voice check (Resemblyzer)", "table": table, "notes": notes, "json": result}
