"""Real recorded voices for development and benchmarks (see shared/devdata/README.md).

The voices are Asterisk telephone prompts shipped as Debian packages. They are fetched with
``apt-get download`` and unpacked with ``dpkg -x`` (no system install) into a cache outside the
repository, because the audio must never be committed. Each speaker's folder is built in a temporary
directory and renamed into place, so an interrupted fetch never leaves a half speaker behind, and it
carries ``clips.json`` (durations, transcripts, speech fraction) so later calls decode nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VoxcloneError


class DevdataError(VoxcloneError, RuntimeError):
    """The development voices cannot be fetched, read or split."""


@dataclass(frozen=True)
class Speaker:
    """One recorded voice: the Debian package with its audio, and its transcripts if any."""

    id: str
    package: str
    language: str
    gender: str
    transcripts: str | None


@dataclass(frozen=True)
class Clip:
    """One extracted prompt of a speaker."""

    speaker: str
    path: Path
    text: str | None
    duration: float


SPEAKERS: dict[str, Speaker] = {
    s.id: s
    for s in (
        Speaker("fr-june", "asterisk-core-sounds-fr-g722", "fr", "female", "asterisk-core-sounds-fr"),
        Speaker("it-carlo", "asterisk-core-sounds-it-g722", "it", "male", "asterisk-core-sounds-it"),
        # The README says only "one professional voice"; the package's folder is ru_RU_f_IvrvoiceRU
        # (Asterisk names voices lang_COUNTRY_gender_Name), so the voice is female.
        Speaker("ru-voice", "asterisk-core-sounds-ru-g722", "ru", "female", "asterisk-core-sounds-ru"),
        Speaker("fr-armelle", "asterisk-prompt-fr-armelle", "fr", "female", None),
        Speaker("it-menardi", "asterisk-prompt-it-menardi-wav", "it", "female", None),
        # The package's LEEME credits "la voz de July E. Jiménez": a female voice.
        Speaker("es-co", "asterisk-prompt-es-co", "es", "female", None),
    )
}

AUDIO_SUFFIXES = (".g722", ".gsm", ".wav")
# Bump when clips.json's content or its derivation changes, so stale caches are rebuilt from the audio.
_INDEX_VERSION = 1
_INDEX = "clips.json"
# Folders of single words or letters, and of pure silence: useless as enrollment or reference speech.
_WORD_FOLDERS = ("digits", "letters", "phonetic", "silence")
# A clip is "mostly silence" below this fraction of active 20 ms frames.
_MIN_SPEECH_FRACTION = 0.5
_MIN_WORDS = 3

_lists_updated = False  # apt-get update runs at most once per process


def cache_dir() -> Path:
    """Where fetched voices live: ``$VOXCLONE_DEVDATA``, else ``<VOXCLONE_HOME>/devdata``."""
    env = os.environ.get("VOXCLONE_DEVDATA")
    if env:
        return Path(env).expanduser()
    from ..engine.assets import home

    return home() / "devdata"


def _speaker(speaker_id: str) -> Speaker:
    try:
        return SPEAKERS[speaker_id]
    except KeyError:
        raise DevdataError(f"unknown dev speaker {speaker_id!r}; known: {', '.join(SPEAKERS)}") from None


# --------------------------------------------------------------------------- apt-get / dpkg


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(cmd: list[str], package: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DevdataError(
            f"cannot fetch {package}: {cmd[0]} is not installed. The dev voices are Debian packages; "
            "run the benchmark on Debian/Ubuntu (or set VOXCLONE_DEVDATA to a folder already fetched there)."
        ) from None


def _failed(what: str, package: str, proc: subprocess.CompletedProcess[str]) -> DevdataError:
    return DevdataError(
        f"{what} failed for the package {package} (exit {proc.returncode}):\n{_tail(proc.stderr or proc.stdout)}\n"
        "The dev voices are downloaded from the Debian archive the first time they are used; "
        "without network access to it the benchmark cannot run."
    )


# apt-get's words for "this package is not in the local package lists" (never updated, as in fresh
# containers, or stale so the listed version is gone from the mirror).
_NO_LISTS = re.compile(r"Unable to locate package|has no installation candidate|Can't select|404\s+Not Found")


def _download(package: str, dest: Path) -> Path:
    """``apt-get download`` one package into ``dest``; update the package lists once if they lack it."""
    global _lists_updated
    cmd = ["apt-get", "download", package]
    proc = _run(cmd, package, cwd=dest)
    if proc.returncode != 0 and not _lists_updated and _NO_LISTS.search(proc.stderr):
        _lists_updated = True  # set first: a failing update must not be retried for every package
        update = _run(["apt-get", "update"], package)
        if update.returncode != 0:
            raise _failed("apt-get update (needed to find it)", package, update)
        proc = _run(cmd, package, cwd=dest)
    if proc.returncode != 0:
        err = _failed("apt-get download", package, proc)
        if _lists_updated and _NO_LISTS.search(proc.stderr):
            err.args = (
                f"{err} If the network is fine, the apt sources lack Debian main (the packages are in bookworm).",
            )
        raise err
    # The file name carries the version (and an escaped epoch), so find it rather than guess it.
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise DevdataError(f"apt-get download {package} succeeded but left no {package}_*.deb in {dest}")
    return debs[-1]


def _extract(package: str, dest: Path) -> None:
    """Download ``package`` and unpack its files into ``dest`` (which must not exist yet)."""
    with tempfile.TemporaryDirectory(prefix=".deb-", dir=dest.parent) as tmp:
        deb = _download(package, Path(tmp))
        proc = _run(["dpkg", "-x", str(deb), str(dest)], package)
        if proc.returncode != 0:
            raise _failed("dpkg -x", package, proc)


# --------------------------------------------------------------------------- audio


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples at the file's own rate."""
    if path.suffix != ".g722":
        import soundfile as sf

        try:  # libsndfile reads WAV, and headerless GSM 6.10 from the .gsm suffix
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            return data.mean(axis=1), int(rate)
        except (sf.LibsndfileError, RuntimeError):
            pass  # fall through to PyAV, which reads what this libsndfile build cannot
    try:
        import av
    except ImportError:
        raise DevdataError(f"decoding {path.name} needs PyAV; run: pip install av") from None
    # G.722 files are raw (no header), so the demuxer must be named.
    fmt = "g722" if path.suffix == ".g722" else ("gsm" if path.suffix == ".gsm" else None)
    chunks: list[np.ndarray] = []
    rate = 0
    try:
        with av.open(str(path), format=fmt) as container:
            for frame in container.decode(audio=0):
                rate = frame.sample_rate
                arr = raw = frame.to_ndarray()
                channels = len(frame.layout.channels)
                # planar frames are (channels, n); packed ones interleave channels in one row
                arr = arr.mean(axis=0) if frame.format.is_planar else arr.reshape(-1, channels).mean(axis=1)
                if np.issubdtype(raw.dtype, np.integer):
                    arr = arr / float(np.iinfo(raw.dtype).max + 1)
                chunks.append(arr.astype(np.float32))
    except av.FFmpegError as exc:
        raise DevdataError(f"cannot decode {path}: {exc}") from exc
    if not chunks:
        raise DevdataError(f"{path} holds no audio")
    return np.concatenate(chunks), rate


def load(clip: Clip, sample_rate: int = 16000) -> np.ndarray:
    """A clip as mono float32 in [-1, 1] at ``sample_rate`` (resampled with soxr)."""
    samples, rate = _decode(clip.path)
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, rate, sample_rate, quality="HQ")
    # resampling can overshoot full-scale peaks slightly
    return np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32)


def _speech_fraction(samples: np.ndarray, rate: int) -> float:
    """Fraction of 20 ms frames within 35 dB of the loudest one (and above -50 dBFS)."""
    hop = max(1, rate // 50)
    n = len(samples) // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(rms + 1e-10)
    # relative threshold so a quiet recording still counts; absolute floor so digital silence does not
    return float(np.mean(db > max(-50.0, db.max() - 35.0)))


# --------------------------------------------------------------------------- transcripts


def _read_transcripts(root: Path) -> dict[str, str]:
    """``relative/name -> text`` from every ``*.txt.gz`` of a transcript package.

    Lines read ``name: text`` (``digits/1: un``); ``;`` starts a comment. Some lines have no text,
    and one Russian line repeats its key (``conf-adminmenu: conf-adminmenu: ...``).
    """
    texts: dict[str, str] = {}
    for gz in sorted(root.rglob("*.txt.gz")):
        if gz.name.startswith("changelog"):
            continue
        # utf-8-sig: the Italian file starts with a byte-order mark
        for line in gzip.decompress(gz.read_bytes()).decode("utf-8-sig", errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            key, sep, text = line.partition(":")
            key, text = key.strip(), text.strip()
            if not sep or not key or " " in key:
                continue
            if text.startswith(key + ":"):
                text = text[len(key) + 1 :].strip()
            if text:
                texts[key] = text
    return texts


# --------------------------------------------------------------------------- index


def _audio_files(root: Path) -> list[Path]:
    # os.walk does not follow symlinks: fr-armelle and es-co link folders (sounds/digits/fr -> ../fr/digits)
    # that would otherwise list the same files twice.
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.suffix in AUDIO_SUFFIXES and not path.is_symlink():
                found.append(path)
    return sorted(found)


def _build_index(speaker: Speaker, folder: Path) -> dict:
    """Decode every clip of an extracted speaker once; match transcripts by relative name."""
    files = _audio_files(folder / "audio")
    if not files:
        raise DevdataError(f"the package {speaker.package} holds no {'/'.join(AUDIO_SUFFIXES)} audio")
    # The sounds root differs by package (sounds/fr_CA_f_June, sounds/fr, sounds/es); transcript keys
    # are relative to it.
    sounds = Path(os.path.commonpath([p.parent for p in files]))
    texts = _read_transcripts(folder / "text") if speaker.transcripts else {}
    # Two Italian keys differ from their files only by case (letters/O vs letters/o.g722).
    lowered = {k.lower(): v for k, v in texts.items()}
    clips = []
    for path in files:
        key = path.relative_to(sounds).with_suffix("").as_posix()
        if path.stat().st_size == 0:  # ru-voice ships an empty is.g722; list it, split() skips it
            samples, rate = np.zeros(0, np.float32), 1
        else:
            samples, rate = _decode(path)
        clips.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "key": key,
                "text": texts.get(key, lowered.get(key.lower())),
                "duration": round(len(samples) / rate, 4),
                "speech": round(_speech_fraction(samples, rate), 3),
            }
        )
    return {"version": _INDEX_VERSION, "package": speaker.package, "clips": clips}


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=0)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared (CI, other users)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _index(speaker_id: str) -> tuple[Path, dict]:
    """The speaker's cache folder and its clips.json, fetching and building them if needed."""
    speaker = _speaker(speaker_id)
    folder = cache_dir() / speaker.id
    index_path = folder / _INDEX
    if folder.is_dir():
        try:
            data = json.loads(index_path.read_text(encoding="utf-8"))
            if data.get("version") == _INDEX_VERSION and data.get("package") == speaker.package:
                return folder, data
        except (OSError, ValueError):
            pass
        # extracted audio but a missing or stale index: rebuild it from the audio in place
        data = _build_index(speaker, folder)
        _write_json(index_path, data)
        return folder, data

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{speaker.id}-", dir=folder.parent))
    try:
        _extract(speaker.package, tmp / "audio")
        if speaker.transcripts:
            _extract(speaker.transcripts, tmp / "text")
        data = _build_index(speaker, tmp)
        _write_json(tmp / _INDEX, data)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared (CI, other users)
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / _INDEX).is_file():  # not a concurrent fetch that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, data


def fetch(speaker_id: str) -> list[Clip]:
    """All clips of a speaker sorted by path, fetched and unpacked into :func:`cache_dir` once."""
    folder, data = _index(speaker_id)
    clips = [Clip(speaker_id, folder / c["path"], c["text"], c["duration"]) for c in data["clips"]]
    return sorted(clips, key=lambda c: c.path)


# --------------------------------------------------------------------------- split


def split(
    speaker_id: str,
    enroll_seconds: float = 20.0,
    heldout: int = 8,
    seed: int = 0,
    min_seconds: float = 1.5,
    max_seconds: float = 10.0,
) -> tuple[list[Clip], list[Clip]]:
    """Disjoint ``(enrollment, heldout)`` clips of one speaker, the same for the same arguments.

    Only spoken sentences qualify: durations within ``[min_seconds, max_seconds]``, not mostly silence,
    not from the word folders (digits, letters, ...), and with a transcript of at least three words when
    the speaker has transcripts. The held-out clips are drawn first, so they stay the same whatever
    ``enroll_seconds`` is; enrollment clips then add up to within about 5% (at least 0.5 s) of
    ``enroll_seconds``, and a longer enrollment extends a shorter one.
    """
    folder, data = _index(speaker_id)
    has_text = any(c["text"] for c in data["clips"])
    pool = []
    for c in data["clips"]:
        if not min_seconds <= c["duration"] <= max_seconds or c["speech"] < _MIN_SPEECH_FRACTION:
            continue
        if c["key"].split("/")[0] in _WORD_FOLDERS:
            continue
        if has_text and len((c["text"] or "").split()) < _MIN_WORDS:
            continue
        pool.append(Clip(speaker_id, folder / c["path"], c["text"], c["duration"]))
    pool.sort(key=lambda c: c.path)  # a fixed order before shuffling keeps the split deterministic
    random.Random(seed).shuffle(pool)

    if len(pool) <= heldout:
        raise DevdataError(f"{speaker_id} has only {len(pool)} usable clips; cannot hold out {heldout} and enroll")
    held, rest = pool[:heldout], pool[heldout:]
    tolerance = max(0.5, 0.05 * enroll_seconds)
    enroll: list[Clip] = []
    total = 0.0
    for clip in rest:
        if total >= enroll_seconds - tolerance:
            break
        if total + clip.duration <= enroll_seconds + tolerance:  # skip clips that would overshoot
            enroll.append(clip)
            total += clip.duration
    if total < enroll_seconds - tolerance:
        raise DevdataError(
            f"{speaker_id} has only {total:.1f} s of usable enrollment speech after holding out {heldout} "
            f"clips; asked for {enroll_seconds:.1f} s"
        )
    return enroll, held
