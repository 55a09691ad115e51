"""The voice library: one folder per cloned voice, written atomically, exportable as one file.

VOXCLONE_HOME/voices/NAME/
    voice.json      name, language, created, quality, speed/pitch, consent or waiver, sources (sha256), build log
    style.npy       (510, 1, 256) style pack the engine speaks with
    decoder.npy     decoder adapter (the graph's decoder_bias, then decoder_lora values), only for trained voices
    embedding.npy   the speaker's reference embedding (Resemblyzer, 256-d)
    report.json     the collection's quality report
    fit_log.json    every fitting step (empty for instant voices)
    clips/*.wav     the normalised clips (enrolment and held-out) with clips.json transcripts
    consent.*       the consent recording, when one was given
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from functools import cached_property
from pathlib import Path

import numpy as np

from ..engine.assets import home, sha256_file
from ..errors import VoiceExistsError, VoiceNotFoundError, VoxcloneError

FORMAT = "voxclone-voice/1"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
MAX_IMPORT_BYTES = 2 * 1024**3


class LibraryError(VoxcloneError, ValueError):
    """A voice file or folder is malformed, tampered with, or the name is not allowed."""


def check_name(name: str, stock: set[str] | frozenset[str] = frozenset()) -> str:
    if not NAME_RE.match(name or ""):
        raise LibraryError(
            f"voice name {name!r}: use 1-48 lowercase letters, digits, '-' or '_' (starting with a letter or digit)"
        )
    if name in stock:
        raise LibraryError(f"{name!r} is a stock voice; choose another name")
    return name


class VoiceLibrary:
    def __init__(self, root: str | os.PathLike | None = None, *, shared: VoiceLibrary | None = None):
        """``shared``: take the audit log and protected voices from that library (a server's accounts)."""
        env = os.environ.get("VOXCLONE_LIBRARY")
        self.root = Path(root) if root else Path(env) if env else home() / "voices"
        if shared is not None:
            self.__dict__["audit"], self.__dict__["protected"] = shared.audit, shared.protected

    @cached_property
    def audit(self):
        """The library's audit log (``audit.sqlite`` beside the voices)."""
        from ..safeguards.audit import AuditLog

        return AuditLog(self.root / "audit.sqlite")

    @cached_property
    def consents(self):
        """Consent statements issued and not yet used (``.consent/``)."""
        from ..safeguards.consent import ConsentStore

        return ConsentStore(self.root / ".consent")

    @cached_property
    def protected(self):
        """Voices that must never be cloned (``.protected/``)."""
        from ..safeguards.protected import ProtectedVoices

        return ProtectedVoices(self.root / ".protected")

    def usable(self, name: str, record: dict | None = None) -> dict:
        """The voice's record, if its consent allows use (verified recording or recorded waiver)."""
        record = record if record is not None else self.record(name)
        consent = record.get("consent") or {}
        if consent.get("kind") == "waiver" and consent.get("reason"):
            return record
        if consent.get("kind") == "recording" and consent.get("verified") is True:
            return record
        raise LibraryError(
            f"voice {name!r} has no verified consent, so it cannot be used; rebuild it with a consent recording "
            "(`voxclone consent NAME`, then `voxclone clone NAME ... --consent FILE`)"
        )

    def path(self, name: str) -> Path:
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / "voice.json").is_file() and NAME_RE.match(p.name)
        )

    def exists(self, name: str) -> bool:
        return (self.path(name) / "voice.json").is_file()

    def record(self, name: str) -> dict:
        if not self.exists(name):
            raise VoiceNotFoundError(f"no cloned voice named {name!r}; `voxclone voices` lists them")
        return json.loads((self.path(name) / "voice.json").read_text(encoding="utf-8"))

    def voice_id(self, name: str, record: dict | None = None) -> str:
        """The voice's random id: what the audit log and output labels name instead of the person."""
        record = record if record is not None else self.record(name)
        if record.get("id"):
            return str(record["id"])
        return hashlib.sha256(f"{name}\n{record.get('created', '')}".encode()).hexdigest()[:16]

    def load(self, name: str) -> tuple[dict, np.ndarray]:
        record = self.record(name)
        pack = np.load(self.path(name) / "style.npy")
        if pack.ndim != 3 or pack.shape[1:] != (1, 256):
            raise LibraryError(f"voice {name!r}: style.npy has shape {pack.shape}, expected (N, 1, 256)")
        return record, pack.astype(np.float32)

    def decoder(self, name: str) -> np.ndarray | None:
        """The voice's decoder adapter, or None (instant, best and style-only trained voices have none)."""
        path = self.path(name) / "decoder.npy"
        if not path.exists():
            return None
        vec = np.load(path, allow_pickle=False)
        if vec.ndim != 1 or not np.isfinite(vec).all():
            raise LibraryError(f"voice {name!r}: decoder.npy is not a finite vector")
        return vec.astype(np.float32)

    def create(
        self,
        name: str,
        record: dict,
        pack: np.ndarray,
        embedding: np.ndarray,
        report: dict,
        clips: list[tuple[str, np.ndarray, int, dict]] = (),
        fit_log: list[dict] = (),
        consent_file: Path | None = None,
        decoder: np.ndarray | None = None,
    ) -> Path:
        """Write a new voice folder in one step (temp folder, then rename); refuse an existing name."""
        if self.exists(name):
            raise VoiceExistsError(f"a voice named {name!r} already exists; pick another name or delete it first")
        import soundfile as sf

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            np.save(tmp / "style.npy", np.asarray(pack, np.float32))
            np.save(tmp / "embedding.npy", np.asarray(embedding, np.float32))
            if decoder is not None:
                np.save(tmp / "decoder.npy", np.asarray(decoder, np.float32).reshape(-1))
            (tmp / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
            (tmp / "fit_log.json").write_text(json.dumps(list(fit_log), indent=1), encoding="utf-8")
            if clips:
                (tmp / "clips").mkdir()
                meta = []
                for clip_id, samples, rate, info in clips:
                    sf.write(tmp / "clips" / f"{clip_id}.wav", samples, rate, subtype="PCM_16")
                    meta.append({"id": clip_id, **info})
                (tmp / "clips" / "clips.json").write_text(
                    json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8"
                )
            if consent_file is not None:
                shutil.copy(consent_file, tmp / f"consent{Path(consent_file).suffix.lower()}")
            (tmp / "voice.json").write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
            try:
                os.rename(tmp, self.path(name))  # atomic; fails if the name appeared meanwhile
            except OSError as e:
                raise VoiceExistsError(f"a voice named {name!r} already exists") from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.path(name)

    def delete(self, name: str) -> list[str]:
        """Remove every file of a voice; return the relative paths that were removed."""
        if not self.exists(name):
            raise VoiceNotFoundError(f"no cloned voice named {name!r}")
        folder = self.path(name)
        removed = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        # rename first so the voice disappears in one step even if removal is interrupted
        voice_id = self.voice_id(name)
        doomed = Path(tempfile.mkdtemp(prefix=".deleting.", dir=self.root))
        os.rename(folder, doomed / "voice")
        shutil.rmtree(doomed)
        self.audit.append("voice_deleted", voice_id, files_removed=len(removed))  # the tombstone
        return removed

    # ------------------------------------------------------------------ portable files

    def export(self, name: str, dest: str | os.PathLike, include_audio: bool = True) -> Path:
        """One ``.voxclone`` zip with a manifest of sha256 sums and an overall integrity hash."""
        folder = self.path(name)
        if not self.exists(name):
            raise VoiceNotFoundError(f"no cloned voice named {name!r}")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not include_audio:
            files = [p for p in files if p.suffix.lower() != ".wav" and not p.name.startswith("consent")]
        sums = {str(p.relative_to(folder)): sha256_file(p) for p in files}
        manifest = {"format": FORMAT, "name": name, "files": sums, "digest": _digest(sums)}
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dest.name}.", suffix=".part", dir=dest.parent if str(dest.parent) else "."
        )
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("manifest.json", json.dumps(manifest, indent=1))
                for rel in sums:
                    z.write(folder / rel, f"voice/{rel}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.audit.append("voice_exported", self.voice_id(name), digest=manifest["digest"], audio=include_audio)
        return dest

    def import_file(self, path: str | os.PathLike, name: str | None = None, stock: frozenset[str] = frozenset()) -> str:
        """Validate a ``.voxclone`` file completely, then add it to the library (atomically)."""
        path = Path(path)
        try:
            z = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as e:
            raise LibraryError(f"{path} is not a voxclone voice file: {e}") from e
        with z:
            try:
                manifest = json.loads(z.read("manifest.json"))
            except (KeyError, ValueError) as e:
                raise LibraryError(f"{path}: no readable manifest.json") from e
            if manifest.get("format") != FORMAT:
                raise LibraryError(f"{path}: unsupported format {manifest.get('format')!r} (expected {FORMAT})")
            sums = manifest.get("files") or {}
            if manifest.get("digest") != _digest(sums):
                raise LibraryError(f"{path}: manifest integrity hash does not match; the file was altered")
            members = {i.filename: i for i in z.infolist() if not i.is_dir()}
            expected = {f"voice/{rel}" for rel in sums} | {"manifest.json"}
            if set(members) != expected:
                raise LibraryError(f"{path}: files do not match the manifest ({sorted(set(members) ^ expected)[:3]})")
            if sum(i.file_size for i in members.values()) > MAX_IMPORT_BYTES:
                raise LibraryError(f"{path}: unpacks to more than {MAX_IMPORT_BYTES >> 30} GiB")
            for rel in sums:
                if rel.startswith("/") or ".." in Path(rel).parts:
                    raise LibraryError(f"{path}: unsafe path {rel!r}")
            for needed in ("voice.json", "style.npy"):
                if needed not in sums:
                    raise LibraryError(f"{path}: lacks {needed}")
            name = check_name(name or manifest.get("name", ""), stock)
            if self.exists(name):
                raise VoiceExistsError(f"a voice named {name!r} already exists; import it under another name (--name)")
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".import-{name}.", dir=self.root))
            try:
                for rel, digest in sums.items():
                    data = z.read(f"voice/{rel}")
                    if hashlib.sha256(data).hexdigest() != digest:
                        raise LibraryError(f"{path}: {rel} does not match its sha256; the file was altered")
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                record = json.loads((tmp / "voice.json").read_text(encoding="utf-8"))
                pack = np.load(tmp / "style.npy", allow_pickle=False)
                if pack.ndim != 3 or pack.shape[1:] != (1, 256) or not np.isfinite(pack).all():
                    raise LibraryError(f"{path}: style.npy is not a finite (N, 1, 256) array")
                if "decoder.npy" in sums:
                    vec = np.load(tmp / "decoder.npy", allow_pickle=False)
                    if vec.ndim != 1 or not np.isfinite(vec).all():
                        raise LibraryError(f"{path}: decoder.npy is not a finite vector")
                record["name"] = name
                record["imported_from_id"], record["id"] = record.get("id"), uuid.uuid4().hex[:16]
                (tmp / "voice.json").write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
                try:
                    os.rename(tmp, self.path(name))
                except OSError as e:
                    raise VoiceExistsError(f"a voice named {name!r} already exists") from e
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        self.audit.append("voice_imported", record["id"], digest=manifest["digest"])
        return name


def _digest(sums: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(f"{k}:{v}" for k, v in sorted(sums.items())).encode()).hexdigest()
