"""Guided recording from a microphone: one prompt at a time, with a live level meter."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import VoxcloneError

RATE = 24_000


class RecordingError(VoxcloneError, RuntimeError):
    """No microphone can be used here."""


def _sounddevice():
    try:
        import sounddevice as sd

        sd.query_devices(kind="input")
        return sd
    except Exception as e:  # not installed, no PortAudio, or no input device
        raise RecordingError(
            f"no microphone is available ({e}). Record with any app instead and run "
            "`voxclone collect FILES` then `voxclone clone NAME FILES --consent ...`"
        ) from e


def meter(level: float, width: int = 30) -> str:
    """A text level meter for a peak in [0, 1] (dBFS scale, -60..0)."""
    dbfs = 20 * np.log10(max(level, 1e-6))
    filled = int(round(width * min(1.0, max(0.0, (dbfs + 60) / 60))))
    warn = " CLIPPING" if level >= 0.99 else (" too quiet" if dbfs < -40 else "")
    return "#" * filled + "-" * (width - filled) + f" {dbfs:5.1f} dBFS{warn}"


def record_prompts(prompts: list[str], folder: Path, max_seconds: float = 12.0, console=None) -> Path:
    """Record each prompt to ``folder/NNN.wav`` (Enter starts and stops a take; s skips; q quits)."""
    import soundfile as sf
    from rich.console import Console
    from rich.live import Live

    sd = _sounddevice()
    console = console or Console(stderr=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    for i, prompt in enumerate(prompts, 1):
        target = folder / f"{i:03d}.wav"
        console.print(f"\n[bold]{i}/{len(prompts)}[/]  {prompt}")
        answer = console.input("Enter to record, s to skip, q to quit: ").strip().lower()
        if answer == "q":
            break
        if answer == "s":
            continue
        chunks: list[np.ndarray] = []
        peak = [0.0]
        done = threading.Event()

        def on_audio(indata, frames, t, status, chunks=chunks, peak=peak):
            chunks.append(indata[:, 0].copy())
            peak[0] = float(np.max(np.abs(indata))) if len(indata) else 0.0

        stopper = threading.Thread(target=lambda done=done: (input(), done.set()), daemon=True)
        with sd.InputStream(samplerate=RATE, channels=1, dtype="float32", callback=on_audio):
            stopper.start()
            with Live(console=console, refresh_per_second=15) as live:
                while not done.wait(0.07) and sum(len(c) for c in chunks) < max_seconds * RATE:
                    live.update(f"recording (Enter stops)  {meter(peak[0])}")
        take = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        sf.write(target, take, RATE, subtype="PCM_16")
        console.print(
            f"saved {target.name} ({len(take) / RATE:.1f} s, peak {meter(float(np.max(np.abs(take))) if len(take) else 0)})"
        )
    return folder
