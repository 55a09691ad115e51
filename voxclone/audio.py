"""Audio buffers and files: formats, resampling, atomic writing, playback."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AudioInputError, OutputError

# extension -> (libsndfile container, codec)
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def format_for(path: str | os.PathLike | None, fmt: str | None = None) -> str:
    """The output format: given explicitly, else from the file extension."""
    name = (fmt or (Path(path).suffix.lstrip(".") if path else "") or "").lower()
    name = {"oga": "ogg", "wave": "wav"}.get(name, name)
    if name not in FORMATS:
        what = f"format {fmt!r}" if fmt else f"extension of {str(path)!r}"
        raise OutputError(f"unknown audio {what}; use one of: {', '.join(FORMATS)}")
    return name


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file to mono float32 at its own rate: libsndfile first, then FFmpeg (PyAV).

    Raises AudioInputError naming the file when neither can decode it.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioInputError(f"{p}: no such file")
    import soundfile as sf

    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.mean(axis=1)), int(rate)
    except Exception as first:  # not a libsndfile format (m4a, aac, opus-in-webm, ...)
        sf_error = first
    try:
        import av

        with av.open(str(p)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioInputError(f"{p} has no audio stream")
            rate = stream.codec_context.sample_rate or stream.rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            parts = [
                out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
            ]
            parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except AudioInputError:
        raise
    except Exception as e:
        raise AudioInputError(
            f"{p} is not audio voxclone can read (wav, flac, mp3, ogg, opus, m4a ...): {sf_error}; {e}"
        ) from e
    samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioInputError(f"{p} decodes to no audio at all")
    return samples, int(rate)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out or samples.size == 0:
        return samples
    import soxr

    return soxr.resample(samples, rate_in, rate_out, quality="HQ").astype(np.float32)


@dataclass
class Audio:
    """Mono float32 samples in [-1, 1] at ``sample_rate``; ``text`` is what they say.

    ``tags`` are the labels written into files (voxclone's speech says it is synthetic).
    """

    samples: np.ndarray
    sample_rate: int = 24_000
    text: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # the C2PA manifest files get

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Audio:
        """Read any common audio file (wav flac mp3 ogg opus m4a ...), mixed down to mono."""
        samples, rate = read_audio(path)
        return cls(samples, rate)

    def resample(self, rate: int) -> Audio:
        return Audio(
            resample(self.samples, self.sample_rate, rate), rate, self.text, dict(self.tags), dict(self.provenance)
        )

    def to_bytes(self, fmt: str = "wav") -> bytes:
        buf = io.BytesIO()
        container, codec = FORMATS[format_for(None, fmt)]
        import soundfile as sf

        from .safeguards import metadata

        with sf.SoundFile(buf, "w", self.sample_rate, 1, format=container, subtype=codec) as f:
            metadata.apply(f, self.tags)
            f.write(_clip(self.samples))
        from .safeguards import provenance

        return provenance.sign_bytes(buf.getvalue(), format_for(None, fmt), self.provenance)

    def save(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write atomically: a failed write leaves no partial file and keeps any old one."""
        with AudioWriter(path, self.sample_rate, fmt, tags=self.tags, provenance=self.provenance) as w:
            w.write(self.samples)
        return Path(path)

    def play(self) -> bool:
        """Play on the default sound device if there is one; return whether it played."""
        return play(self)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # mkstemp makes 0600 files; outputs get the usual permissions


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, np.float32), -1.0, 1.0)


class AudioWriter:
    """Stream chunks into an audio file through a temp file renamed into place on success."""

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        fmt: str | None = None,
        tags: dict[str, str] | None = None,
        provenance: dict | None = None,
    ):
        self.path = Path(path)
        self.provenance = provenance
        self.format = format_for(self.path, fmt)
        self.sample_rate = sample_rate
        self.frames = 0
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"cannot write {self.path}: folder {parent} does not exist")
        if self.path.is_dir():
            raise OutputError(f"cannot write {self.path}: it is a folder")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"cannot write {self.path}: folder {parent} is not writable")
        import soundfile as sf

        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=parent)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: folder {parent} is not writable ({e.strerror})") from e
        os.close(fd)
        self._tmp = Path(tmp)
        container, codec = FORMATS[self.format]
        try:
            self._file = sf.SoundFile(tmp, "w", sample_rate, 1, format=container, subtype=codec)
            from .safeguards import metadata

            metadata.apply(self._file, tags)
        except Exception as e:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path} as {self.format}: {e}") from e

    def write(self, samples: np.ndarray) -> None:
        self._file.write(_clip(samples))
        self.frames += len(samples)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def close(self, commit: bool = True) -> None:
        try:
            self._file.close()
            if commit:
                if self.provenance:
                    from .safeguards import provenance

                    provenance.sign_file(self._tmp, self.format, self.provenance)
                os.chmod(self._tmp, _FILE_MODE)
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)


def play(audio: Audio) -> bool:
    """Best effort playback: sounddevice, else a system player; never raises for lack of a device."""
    try:
        import sounddevice as sd

        sd.play(audio.samples, audio.sample_rate)
        sd.wait()
        return True
    except Exception:  # no PortAudio, no device, or not installed
        pass
    for cmd in (["paplay"], ["aplay", "-q"], ["afplay"], ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"]):
        if shutil.which(cmd[0]):
            with tempfile.NamedTemporaryFile(suffix=".wav") as f:
                f.write(audio.to_bytes("wav"))
                f.flush()
                if subprocess.run([*cmd, f.name], capture_output=True).returncode == 0:
                    return True
    return False
