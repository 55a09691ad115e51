"""Is a file voxclone speech? The watermark decides; text labels are reported beside it."""

from __future__ import annotations

import os
from pathlib import Path

from ..audio import read_audio
from . import metadata, provenance
from .watermark import Watermarker
from .watermark import shared as shared_watermarker


def detect_file(path: str | os.PathLike, watermarker: Watermarker | None = None) -> dict:
    """``{"file", "watermarked", "confidence", "seconds", "labels", "labels_say_synthetic", "c2pa"}``.

    Labels and manifests are easy to strip, so only the watermark sets ``watermarked``.
    """
    samples, rate = read_audio(path)
    verdict = (watermarker or shared_watermarker()).detect(samples, rate)
    labels = metadata.read(path)
    return {
        "file": str(Path(path)),
        **verdict.as_dict(),
        "labels": labels,
        "labels_say_synthetic": metadata.says_synthetic(labels),
        "c2pa": provenance.read(path),
    }
