"""`voxclone bench speed`: real-time factor, first-chunk latency, load time, peak memory.

RTF = wall seconds / audio seconds, end to end (normalisation, G2P, model, trimming). The
baseline is the unmodified graph with onnxruntime's default session options, timed in the same
run, so the ratio shows what voxclone's changes bought on this machine.
"""

from __future__ import annotations

import os
import platform
import resource
import time

from ..api import Voxclone
from ..engine import cpu as machine

SHORT = "Hello! Thanks for calling. How can I help you today?"
MEDIUM = (
    "Voice banking lets people record their own voice while they still can. Later, a computer can speak "
    "any sentence they type, and it still sounds like them. That matters to someone losing their speech, "
    "because a voice is part of who you are."
)
LONG = " ".join(
    [
        "The lighthouse stood at the end of a narrow spit of rock, and for ninety years its keepers had "
        "written the weather into a leather book every evening at six o'clock.",
        "Some entries were only a word long: calm, fog, gale. Others ran for pages, describing ships that "
        "passed too close, storms that tore the shutters away, and one winter when the sea froze so far "
        "out that a fox walked across the bay.",
        "The last keeper, a quiet woman named Margaret Hale, kept the book for twenty-two years.",
        "When the light was automated she was asked to leave, and she took the book with her, because, "
        "as she told the men from the ministry, nobody had ever asked who it belonged to.",
        "She lived in the village after that, in a small house with a blue door, and children would "
        "knock on it to ask about the fox.",
        "She always told them the same thing: that it had walked out of the fog in the morning, looked "
        "at the lighthouse for a long minute, and then turned around and walked home again, as if it had "
        "only come to see whether anyone was still there.",
        "Years later, when the village opened a small museum, the book was the first thing they asked "
        "for, and Margaret said no.",
        "It was not a museum piece, she said. It was a diary of the sea, and the sea was still going.",
        "So every evening at six o'clock she walked down to the harbour wall, looked at the sky, and "
        "wrote one more line.",
        "When she died, her niece found the last entry. It said only: clear, light wind from the west, "
        "a fox on the rocks.",
        "Nobody in the village could say whether the fox had really come back, or whether Margaret had "
        "simply wanted the story to end the way it began.",
        "But the niece kept writing, one line each evening, and as far as anyone knows she still does.",
    ]
)
CASES = {"short": SHORT, "medium": MEDIUM, "long": LONG}


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if platform.system() == "Linux" else kb / (1024 * 1024)


def _rtf(tts: Voxclone, text: str, voice: str, repeats: int) -> tuple[float, float]:
    """(best RTF over ``repeats``, audio seconds) after one warm-up call."""
    tts.speak(text, voice=voice)
    best, dur = float("inf"), 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        audio = tts.speak(text, voice=voice)
        best = min(best, time.perf_counter() - t0)
        dur = audio.duration
    return best / dur, dur


def _first_chunk(tts: Voxclone, text: str, voice: str, repeats: int, fast_start: bool = True) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        gen = tts.stream(text, voice=voice, fast_start=fast_start)
        next(gen)
        best = min(best, time.perf_counter() - t0)
        gen.close()
    return best


def _stalls(tts: Voxclone, text: str, voice: str) -> tuple[float, int]:
    """(seconds, times) a real-time player of ``stream(text)`` would wait after the first chunk: each
    piece plays as soon as it is ready and the one before it has played."""
    play_end, waited, gaps = None, 0.0, 0
    for piece in tts.stream(text, voice=voice):
        now = time.perf_counter()
        if play_end is not None and now > play_end:
            waited, gaps = waited + now - play_end, gaps + 1
        play_end = max(now, play_end or now) + piece.duration
    return waited, gaps


def run(voice: str = "af_heart", repeats: int = 3, baseline: bool = True) -> dict:
    results: dict = {"voice": voice, "cpu_count": os.cpu_count(), **machine.describe()}

    t0 = time.perf_counter()
    tts2 = Voxclone(threads=2).load()
    results["load_s"] = round(time.perf_counter() - t0, 3)
    results["session_load_s"] = round(tts2.engine.load_seconds, 3)
    # cold start: the first chunk of a fresh instance, model load included
    t0 = time.perf_counter()
    gen = tts2.stream(MEDIUM, voice=voice)
    next(gen)
    gen.close()
    results["first_chunk_cold_s"] = round(results["load_s"] + time.perf_counter() - t0, 3)

    rows = [["case", "audio s", "RTF 2 thr", "RTF 1 thr", "speed 2 thr"]]
    for name, text in CASES.items():
        rtf2, dur = _rtf(tts2, text, voice, 1 if name == "long" else repeats)
        results[f"audio_{name}_s"] = round(dur, 2)
        results[f"rtf_{name}_2threads"] = round(rtf2, 4)
    # one loaded voice, every case done: the memory a user sees (before other sessions exist)
    results["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    tts1 = Voxclone(threads=1).load()
    for name, text in CASES.items():
        rtf1, _ = _rtf(tts1, text, voice, 1 if name == "long" else repeats)
        results[f"rtf_{name}_1thread"] = round(rtf1, 4)
        rtf2 = results[f"rtf_{name}_2threads"]
        rows.append(
            [name, f"{results[f'audio_{name}_s']:.1f}", f"{rtf2:.3f}", f"{rtf1:.3f}", f"{1 / rtf2:.1f}x realtime"]
        )
    del tts1

    results["first_chunk_s"] = round(_first_chunk(tts2, MEDIUM, voice, repeats), 3)
    results["first_chunk_no_fast_start_s"] = round(_first_chunk(tts2, MEDIUM, voice, repeats, fast_start=False), 3)
    for name in ("medium", "long"):
        waited, gaps = _stalls(tts2, CASES[name], voice)
        results[f"stream_stall_s_{name}"], results[f"stream_stalls_{name}"] = round(waited, 2), gaps
    g2p = tts2._g2p_for("en-us")
    t0 = time.perf_counter()
    for _ in range(5):
        g2p(LONG)
    results["g2p_long_s"] = round((time.perf_counter() - t0) / 5, 4)

    notes = []
    if baseline:
        import onnxruntime as ort

        # the naive call: unmodified graph, onnxruntime's default session options ...
        naive = Voxclone(optimize=False).load()
        naive.engine.session = ort.InferenceSession(str(naive.engine.path), providers=["CPUExecutionProvider"])
        # ... and the unmodified graph with voxclone's session options, to separate the two changes
        tuned = Voxclone(optimize=False, threads=2).load()
        for label, tts in (("baseline", naive), ("options_only", tuned)):
            for name in ("short", "medium"):
                rtf, _ = _rtf(tts, CASES[name], voice, repeats)
                results[f"{label}_rtf_{name}"] = round(rtf, 4)
        for name in ("short", "medium"):
            results[f"speedup_{name}"] = round(results[f"baseline_rtf_{name}"] / results[f"rtf_{name}_2threads"], 3)
        med = f"{results['audio_medium_s']:.1f}"
        rows.append(["medium, original graph, ORT defaults", med, f"{results['baseline_rtf_medium']:.3f}", "", ""])
        rows.append(
            ["medium: original graph, voxclone options", med, f"{results['options_only_rtf_medium']:.3f}", "", ""]
        )
        notes.append(
            f"speed-up over the naive call on medium text: {results['speedup_medium']:.2f}x "
            f"(session options alone: {results['baseline_rtf_medium'] / results['options_only_rtf_medium']:.2f}x; "
            "the rest is the graph rewrite)"
        )

    notes += [
        f"first chunk (warm, fast start): {results['first_chunk_s']:.3f} s; without fast start "
        f"{results['first_chunk_no_fast_start_s']:.3f} s; cold (incl. load) {results['first_chunk_cold_s']:.3f} s",
        "streamed to a real-time player (fast start): it waits "
        + "; ".join(
            f"{results[f'stream_stall_s_{n}']:.2f} s in {results[f'stream_stalls_{n}']} gap(s) for the {n} text "
            f"({results[f'audio_{n}_s']:.0f} s)"
            for n in ("medium", "long")
        )
        + " after the first chunk",
        f"load: {results['load_s']:.2f} s (session {results['session_load_s']:.2f} s); G2P of the long text "
        f"{results['g2p_long_s'] * 1000:.0f} ms; peak RSS {results['peak_rss_mb']:.0f} MB",
    ]
    return {
        "title": f"speed ({voice}, {machine.label(results)})",
        "table": rows,
        "notes": notes,
        "json": results,
    }
