"""Is a file voxclone speech? The watermark decides; text labels are reported beside it."""

from __future__ import annotations

import os
from pathlib import Path

from ..audio import read_audio
from . import metadata
from .watermark import Watermarker
from .watermark import shared as shared_watermarker


def detect_file(path: str | os.PathLike, watermarker: Watermarker | None = None) -> dict:
    """``{"file", "watermarked", "confidence", "seconds", "labels", "labels_say_synthetic"}``.

    Labels are easy to strip or forge, so only the watermark sets ``watermarked``.
    """
    samples, rate = read_audio(path)
    verdict = (watermarker or shared_watermarker()).detect(samples, rate)
    labels = metadata.read(path)
    return {
        "file": str(Path(path)),
        **verdict.as_dict(),
        "labels": labels,
        "labels_say_synthetic": metadata.says_synthetic(labels),
    }
