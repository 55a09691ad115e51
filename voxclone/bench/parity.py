"""`voxclone bench parity`: the PyTorch rebuild of Kokoro against the int8 ONNX graph it was recovered from."""

from __future__ import annotations

import time

import torch

from ..training import convert, parity
from .sentences import SENTENCES


def run(sentences: int = 20, voices: tuple[str, ...] = parity.VOICES, threads: int = 2, progress=None) -> dict:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = convert.load()
    load_s = time.perf_counter() - t0
    texts = [text for text, _ in SENTENCES[:sentences]]
    r = parity.run(model, texts, voices, progress=progress)
    r["load_s"] = round(load_s, 2)
    rows = [
        ["measure", "ONNX int8", "torch float", "target"],
        ["duration |diff| (frames per phoneme)", "", f"{r['duration_mean_abs_diff_frames']:.3f}", "<= 1"],
        ["utterances with identical durations", "", f"{100 * r['duration_identical_fraction']:.0f}%", ""],
        [
            "log-mel L1 to the ONNX audio",
            "",
            f"{r['log_mel_l1']:.3f}",
            f"~ int8 floor {r['log_mel_l1_int8_floor']:.3f}",
        ],
        ["Whisper-base WER", f"{100 * r['wer_onnx']:.2f}%", f"{100 * r['wer_torch']:.2f}%", "equal within noise"],
        [
            "similarity to the ONNX voice centroid",
            f"{r['similarity_onnx']:.4f}",
            f"{r['similarity_torch']:.4f}",
            "equal within noise",
        ],
        ["real-time factor (2 threads)", f"{r['rtf_onnx']:.3f}", f"{r['rtf_torch']:.3f}", ""],
    ]
    notes = [
        f"{len(texts)} sentences x {len(voices)} voices ({', '.join(voices)}); audio compared on the ONNX durations.",
        "int8 floor: the torch model with its quantised layers' inputs passed through uint8 dynamic quantisation, "
        "as the graph does; the L1 between it and the float model is what int8 activations alone explain.",
        f"weights converted from the ONNX and loaded in {r['load_s']} s (cached after the first run).",
    ]
    return {"title": "parity: PyTorch Kokoro vs the int8 ONNX", "table": rows, "notes": notes, "json": r}
