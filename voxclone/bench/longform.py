"""`voxclone bench longform`: a long text streamed to a file, with memory sampled as it goes.

Shows that save() keeps memory bounded: resident memory after the first minute of audio and at
the end should be about the same, however long the text.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..api import Voxclone
from .sentences import SENTENCES
from .speed import LONG


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_text(words: int) -> str:
    """About ``words`` words of varied prose in paragraphs (the story, then the test sentences)."""
    paragraphs, count, n = [], 0, 0
    body = [LONG] + [" ".join(t for t, _ in SENTENCES[i : i + 6]) for i in range(0, len(SENTENCES), 6)]
    while count < words:
        p = f"Part {n + 1}. " + body[n % len(body)]
        paragraphs.append(p)
        count += len(p.split())
        n += 1
    return "\n\n".join(paragraphs)


def run(words: int = 10_000, voice: str = "af_heart", output: Path | None = None, progress=None) -> dict:
    text = make_text(words)
    tts = Voxclone().load()
    samples: list[tuple[float, float]] = []  # (seconds of audio written, RSS MB)
    t0 = time.perf_counter()
    state = {"last": 0.0}

    def on_progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - state["last"] > 2:
            samples.append((now - t0, _rss_mb()))
            state["last"] = now
        if progress:
            progress(done, total)

    with tempfile.TemporaryDirectory() as tmp:
        path = output or Path(tmp) / "longform.mp3"
        duration = tts.save(text, path, voice=voice, progress=on_progress)
        size_mb = path.stat().st_size / 1e6
    wall = time.perf_counter() - t0
    early = [r for t, r in samples if t < 60] or [r for _, r in samples[:1]] or [float("nan")]
    result = {
        "words": len(text.split()),
        "characters": len(text),
        "audio_s": round(duration, 1),
        "wall_s": round(wall, 1),
        "rtf": round(wall / duration, 4),
        "rss_first_minute_mb": round(max(early), 1),
        "rss_peak_sampled_mb": round(max(r for _, r in samples), 1) if samples else None,
        "rss_end_mb": round(_rss_mb(), 1),
        "output_mb": round(size_mb, 2),
        # (wall seconds, RSS MB), about 20 points: flat means bounded
        "rss_timeline": [(round(t, 1), round(r, 1)) for t, r in samples[:: max(1, len(samples) // 20)]],
    }
    rows = [
        ["words", "audio", "wall", "RTF", "RSS first min", "RSS peak", "RSS end"],
        [
            result["words"],
            f"{duration / 60:.1f} min",
            f"{wall / 60:.1f} min",
            f"{result['rtf']:.3f}",
            f"{result['rss_first_minute_mb']:.0f} MB",
            f"{result['rss_peak_sampled_mb']:.0f} MB",
            f"{result['rss_end_mb']:.0f} MB",
        ],
    ]
    return {"title": "long-form streaming to a file", "table": rows, "notes": [], "json": result}
