"""Voices that must never be cloned: operators enrol reference clips; matching enrolments are refused."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import VoxcloneError
from .consent import SPEAKER_THRESHOLD

# stricter than consent: refusing a look-alike is cheaper than cloning a protected person
THRESHOLD = SPEAKER_THRESHOLD - 0.05
_LABEL = re.compile(r"^[\w][\w .'-]{0,63}$")


class ProtectedVoiceError(VoxcloneError, PermissionError):
    """The recordings sound like a protected voice."""


class ProtectedVoices:
    """``<library>/.protected/LABEL.npy`` (a speaker embedding) + ``LABEL.json`` (where it came from)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def labels(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.npy")) if self.root.is_dir() else []

    def add(self, label: str, embedding: np.ndarray, info: dict) -> None:
        if not _LABEL.match(label or ""):
            raise ValueError(f"label {label!r}: use 1-64 letters, digits, spaces, '.', '-' or '_'")
        emb = np.asarray(embedding, np.float32).reshape(-1)
        if emb.shape != (256,) or not np.isfinite(emb).all():
            raise ValueError("a protected voice needs one finite 256-d speaker embedding")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".add.", suffix=".npy", dir=self.root)
        os.close(fd)
        np.save(tmp, emb / (np.linalg.norm(emb) + 1e-9))
        (self.root / f"{label}.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / f"{label}.npy")

    def remove(self, label: str) -> None:
        if label not in self.labels():
            raise KeyError(f"no protected voice labelled {label!r}")
        (self.root / f"{label}.npy").unlink()
        (self.root / f"{label}.json").unlink(missing_ok=True)

    def match(self, embedding: np.ndarray, threshold: float = THRESHOLD) -> tuple[str, float] | None:
        """The most similar protected voice at or above ``threshold``, if any."""
        best: tuple[str, float] | None = None
        e = np.asarray(embedding, np.float32).reshape(-1)
        for label in self.labels():
            sim = float(np.dot(np.load(self.root / f"{label}.npy"), e))
            if sim >= threshold and (best is None or sim > best[1]):
                best = (label, sim)
        return best
