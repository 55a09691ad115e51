"""The HTTP server: OpenAI-compatible speech, the voices API, accounts, detection, the web UI.

A thin layer over the Python API. Each account speaks with a voice library of its own (stock voices
are shared), so one account cannot name, use, export or delete another's voice. Synthesis runs on
worker threads through the fair scheduler in ``limits``; builds run on the job thread in ``jobs``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from ..api import SpeechSettings, Voxclone
from ..audio import read_audio
from ..cloning.clone import default_budget
from ..cloning.collect import AUDIO_SUFFIXES
from ..cloning.library import VoiceLibrary, check_name
from ..engine.assets import home
from ..errors import AudioInputError, VoiceExistsError, VoiceNotFoundError, VoxcloneError
from ..safeguards.consent import ConsentError
from ..safeguards.detect import detect_file
from ..safeguards.protected import ProtectedVoiceError
from ..text import chunk
from ..text.g2p import resolve_language
from .accounts import Account, AccountError, Accounts
from .encode import FORMATS as STREAM_FORMATS
from .encode import StreamEncoder
from .jobs import Jobs
from .limits import Busy, RateLimiter, Scheduler

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MODELS = ("voxclone", "kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# OpenAI's voice names, so clients written for it work unchanged; each maps to a stock voice
OPENAI_VOICES = {
    "alloy": "af_heart",
    "ash": "am_michael",
    "ballad": "bm_george",
    "coral": "af_bella",
    "echo": "am_adam",
    "fable": "bf_emma",
    "nova": "af_nicole",
    "onyx": "am_onyx",
    "sage": "af_sarah",
    "shimmer": "af_sky",
    "verse": "bm_lewis",
}
# A stream's first piece, cut at a phrase break near this many phonemes (~1.2 s of speech, ~0.45 s to
# synthesise on 2 VNNI cores): small enough for a fast first byte, long enough for natural phrasing.
FIRST_PHONEMES = 18
# While other streams run, a newcomer's first piece waits for theirs (requests that arrive together queue
# behind each other's first pieces), so it is cut shorter still: near 8 phonemes, a phrase of two or three
# words. Kokoro renders ~0.35 s of leading silence and the last sound's lengthening for every piece, so
# this costs ~0.25 s of synthesis against ~0.4 s. `bench serve`, 4 clients, 60 s, VNNI EPYC: see README.
LOADED_FIRST_PHONEMES = 8
# Under load a newcomer's first piece may wait for the piece being synthesised: pieces stay this short
# while other streams run (~2.5 s of speech; ~0.8 s to synthesise on 2 VNNI cores, ~3 s with AVX2
# only). `bench serve`, 4 clients, VNNI, before preemption: p95 first byte 1.26 s with whole
# sentences, 1.09 s at 48 phonemes, 0.98 s at 36.
LOADED_PIECE_PHONEMES = 36


@dataclass
class ServerConfig:
    """Limits and places. ``root`` holds accounts, jobs and each account's voices."""

    root: Path | None = None
    max_text_chars: int = 20_000
    max_upload_bytes: int = 50 * 1024**2
    max_samples: int = 200
    rate: float = 5.0  # requests per second per key, on average
    burst: int = 20
    workers: int = 1  # synthesis slots, each its own model session (see limits.Scheduler)
    max_streams: int = 16
    max_jobs: int = 4
    threads: int | None = None
    preempt: bool = True  # a stream's first piece may stop another's later piece (see limits.Scheduler)

    def __post_init__(self):
        self.root = Path(self.root) if self.root else home() / "server"


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


def _error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    # OpenAI's error shape, so its client raises the right exception with our message
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers or {})


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "voxclone"
    input: str = Field(..., description="The text to speak.")
    voice: str = "af_heart"
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = 1.0
    instructions: str | None = Field(None, description="Accepted for compatibility; voxclone ignores it.")
    stream_format: Literal["audio"] | None = None
    # voxclone's own
    lang: str | None = None
    pitch: float = 0.0
    stream: bool = Field(True, description="False: the whole file at once, with labels and a C2PA manifest.")


class NewVoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    language: str | None = None


class ConsentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speaker: str | None = None
    purpose: str = "my own use"


class BuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quality: Literal["instant", "best", "train", "search"] = "instant"
    seed: int = 0
    budget_s: float | None = Field(
        None, ge=10, le=900, description="best/search: seconds for the whole build (default: 840 best, 280 search)."
    )
    waiver: str | None = Field(None, description="Admin keys only: build without a consent recording.")


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    admin: bool = False


class _Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("voxclone_requests", "HTTP requests", ["route", "status"], registry=self.registry)
        self.audio = Counter("voxclone_audio_seconds", "Seconds of speech sent", registry=self.registry)
        self.first_byte = Histogram(
            "voxclone_speech_first_audio_seconds",
            "Time from request to the first audio piece",
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
            registry=self.registry,
        )
        self.streams = Gauge("voxclone_streams", "Speech streams in progress", registry=self.registry)
        self.rejected = Counter("voxclone_rejected", "Requests refused for load", ["reason"], registry=self.registry)
        self.preemptions = Gauge(
            "voxclone_preemptions", "Later pieces stopped to start a stream's first piece", registry=self.registry
        )
        self.preempted = Gauge(
            "voxclone_preempted_seconds", "Synthesis time thrown away by those stops", registry=self.registry
        )


class Server:
    """State shared by the routes: the speech engine, accounts, jobs, limits."""

    def __init__(self, config: ServerConfig, tts: Voxclone | None = None):
        self.config = config
        self.root = config.root
        self.accounts = Accounts(self.root)
        self.jobs = Jobs(self.root / "jobs.sqlite", max_queued=config.max_jobs)
        self.limiter = RateLimiter(config.rate, config.burst)
        # a tts passed in keeps its own sessions: a slot per session, so the slots never queue on the engine
        workers = tts.sessions if tts is not None else config.workers
        self.tts = tts or Voxclone(threads=config.threads, sessions=workers)
        self.scheduler = Scheduler(workers, config.max_streams, preempt=config.preempt)
        self.operator = self.tts.library  # audit log and protected voices are the operator's
        self.metrics = _Metrics()
        self._tts: dict[str, Voxclone] = {}

    def tts_for(self, account: Account) -> Voxclone:
        """The shared model speaking from the account's own voice library."""
        if account.id not in self._tts:
            lib = VoiceLibrary(self.accounts.folder(account) / "voices", shared=self.operator)
            self._tts[account.id] = self.tts.with_library(lib)
        return self._tts[account.id]

    def library(self, account: Account) -> VoiceLibrary:
        return self.tts_for(account).library

    def drafts(self, account: Account) -> Path:
        return self.accounts.folder(account) / "drafts"

    def ensure_admin(self) -> str | None:
        """Make the first admin account on first start; return its key (shown once, kept in admin.key)."""
        if self.accounts.has_admin():
            return None
        _, key = self.accounts.create("admin", admin=True)
        path = self.root / "admin.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key


def create_app(config: ServerConfig | None = None, tts: Voxclone | None = None) -> FastAPI:
    """The FastAPI app. ``tts`` lets tests share one loaded model between apps."""
    config = config or ServerConfig()
    srv = Server(config, tts)
    app = FastAPI(title="voxclone", version="0.4", docs_url="/docs", redoc_url=None)
    app.state.server = srv

    # ------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _error(e.status, e.message, e.kind, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        parts = []
        for err in e.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return _error(400, "; ".join(parts) or "invalid request", "invalid_request_error")

    @app.exception_handler(Busy)
    async def _busy(request: Request, e: Busy):
        srv.metrics.rejected.labels("busy").inc()
        return _error(503, str(e), "server_busy", {"Retry-After": str(max(1, round(e.retry_after)))})

    @app.exception_handler(VoxcloneError)
    async def _vox(request: Request, e: VoxcloneError):
        if isinstance(e, VoiceNotFoundError):
            return _error(404, str(e), "not_found_error")
        if isinstance(e, VoiceExistsError):
            return _error(409, str(e), "conflict_error")
        if isinstance(e, (ProtectedVoiceError, ConsentError)):
            return _error(403, str(e), "permission_error")
        return _error(400, str(e), "invalid_request_error")

    @app.middleware("http")
    async def _limits(request: Request, call_next):
        size = request.headers.get("content-length")
        limit = config.max_upload_bytes
        if size is not None and (not size.isdigit() or int(size) > limit):
            return _error(413, f"the request body is larger than the limit of {limit:,} bytes", "request_too_large")
        if size is None and request.method in ("POST", "PUT") and request.headers.get("transfer-encoding"):
            return _error(411, "send a Content-Length with the request body", "length_required")
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        srv.metrics.requests.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        response.headers.setdefault("X-Response-Time", f"{time.perf_counter() - t0:.3f}")
        return response

    # ------------------------------------------------------------ auth
    async def account(request: Request) -> Account:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
        acct = await run_in_threadpool(srv.accounts.authenticate, key)
        if acct is None:
            raise ApiError(
                401,
                "missing or unknown API key: send 'Authorization: Bearer vx-...' (the admin key is in "
                f"{srv.root / 'admin.key'} on the server)",
                "authentication_error",
            )
        wait = srv.limiter.take(acct.id)
        if wait > 0:
            srv.metrics.rejected.labels("rate").inc()
            raise ApiError(
                429,
                f"rate limit of {config.rate:g} requests/s (bursts of {config.burst}) reached; retry in {wait:.1f} s",
                "rate_limit_error",
                {"Retry-After": str(max(1, round(wait + 0.49)))},
            )
        return acct

    async def admin(acct: Account = Depends(account)) -> Account:
        if not acct.admin:
            raise ApiError(403, "this needs an admin key", "permission_error")
        return acct

    # ------------------------------------------------------------ health, metrics, models
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "streams": srv.scheduler.streams, "version": app.version}

    @app.get("/metrics")
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        srv.metrics.streams.set(srv.scheduler.streams)
        srv.metrics.preemptions.set(srv.scheduler.preemptions)
        srv.metrics.preempted.set(round(srv.scheduler.preempted_seconds, 3))
        return Response(generate_latest(srv.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(acct: Account = Depends(account)):
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "voxclone"} for m in MODELS]}

    # ------------------------------------------------------------ speech
    @app.post("/v1/audio/speech")
    async def speech(req: SpeechRequest, acct: Account = Depends(account)):
        if req.model not in MODELS:
            raise ApiError(400, f"model {req.model!r}: use one of {', '.join(MODELS)}")
        tts = srv.tts_for(acct)
        name = OPENAI_VOICES.get(req.voice, req.voice)
        try:
            settings = SpeechSettings(voice=name, speed=req.speed, pitch=req.pitch, lang=req.lang).validated()
        except ValueError as e:
            raise ApiError(400, str(e)) from e
        voice = await run_in_threadpool(tts._voice, name)  # unknown voice: 404 before any audio
        g2p = await run_in_threadpool(tts._g2p_for, resolve_language(settings.lang or voice.language).code)
        tts._prepare(req.input, g2p, config.max_text_chars)  # too long, empty or unsayable: 400 now
        release = srv.scheduler.admit()
        try:
            started = time.perf_counter()
            media_type = STREAM_FORMATS[req.response_format][0]
            headers = {
                "X-Voxclone-Synthetic": "true",
                "X-Voxclone-Watermark": "perth" if tts.watermark else "off",
                "X-Voxclone-Voice": voice.voice_id or name,
                "Cache-Control": "no-store",
            }

            def limit() -> int:
                return LOADED_PIECE_PHONEMES if srv.scheduler.busy else chunk.MAX_PHONEMES

            def first() -> int:  # asked when the first piece is planned, after a burst's requests are all in
                return LOADED_FIRST_PHONEMES if srv.scheduler.busy else FIRST_PHONEMES

            if not req.stream and req.response_format in ("wav", "flac", "mp3"):
                return await _whole_file(tts, req, settings, voice, release, headers, media_type, limit)
            from ..safeguards import metadata

            enc = StreamEncoder(
                req.response_format, settings.sample_rate, metadata.tags_for(name, voice.voice_id, voice.waiver)
            )
            marked = tts._marked(req.input, settings, voice, True, None, first, limit)
            pieces = srv.scheduler.iterate(marked, release)

            def body():
                waiting = True
                try:
                    for piece in pieces:
                        if waiting:
                            srv.metrics.first_byte.observe(time.perf_counter() - started)
                            waiting = False
                        srv.metrics.audio.inc(piece.duration)
                        data = enc.feed(piece.samples)
                        if data:
                            yield data
                    yield enc.close()
                finally:
                    pieces.close()

            if not req.stream:
                data = await run_in_threadpool(lambda: b"".join(body()))
                return Response(data, media_type=media_type, headers=headers)
            return StreamingResponse(body(), media_type=media_type, headers=headers, background=BackgroundTask(release))
        except BaseException:
            release()
            raise

    async def _whole_file(tts, req, settings, voice, release, headers, media_type, limit):
        """A labelled file written piece by piece, each piece scheduled like a stream's (a long text
        does not hold the model while other requests wait)."""
        tmp = Path(tempfile.mkdtemp(prefix="voxclone-speech-"))
        path = tmp / f"speech.{req.response_format}"

        def counted(pieces):
            for piece in pieces:
                srv.metrics.audio.inc(piece.duration)
                yield piece

        def write() -> None:
            marked = tts._marked(req.input, settings, voice, False, None, piece_limit=limit)
            tts._write(counted(srv.scheduler.iterate(marked, release)), path, settings, voice, req.response_format)

        try:
            await run_in_threadpool(write)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            release()
        return FileResponse(
            path, media_type=media_type, headers=headers, background=BackgroundTask(shutil.rmtree, tmp, True)
        )

    @app.get("/v1/audio/voices")
    async def speech_voices(acct: Account = Depends(account)):
        tts = srv.tts_for(acct)
        infos = await run_in_threadpool(tts.voices)
        return {
            "voices": [{"name": v.name, "language": v.language, "gender": v.gender, "kind": v.kind} for v in infos],
            "aliases": OPENAI_VOICES,
        }

    # ------------------------------------------------------------ voices (cloning)
    def _draft(acct: Account, name: str, create: bool = False) -> Path:
        check_name(name, frozenset(srv.tts._stock()))
        path = srv.drafts(acct) / name
        if not create and not path.is_dir():
            raise VoiceNotFoundError(f"no voice draft named {name!r}; create it with POST /v1/voices")
        return path

    def _draft_info(acct: Account, name: str) -> dict:
        path = _draft(acct, name)
        meta = json.loads((path / "draft.json").read_text())
        samples = [json.loads(p.read_text()) for p in sorted((path / "samples").glob("*.json"))]
        consent = srv.library(acct).consents
        try:
            statement = consent.pending(name).as_dict()
        except ConsentError:
            statement = None
        job = srv.jobs.active_for(acct.id, name)
        return {
            "name": name,
            "state": "building" if job else "draft",
            "language": meta.get("language"),
            "created": meta.get("created"),
            "samples": samples,
            "sample_seconds": round(sum(s["seconds"] for s in samples), 2),
            "consent_statement": statement,
            "consent_recording": bool(list(path.glob("consent.*"))),
            "job": job.as_dict() if job else None,
        }

    def _samples(path: Path, name: str) -> list[Path]:
        """A draft's uploaded recordings (checked audio; not their .json notes or partial uploads)."""
        files = [p for p in sorted((path / "samples").iterdir()) if p.suffix in AUDIO_SUFFIXES]
        if not files:
            raise ApiError(400, f"voice {name!r} has no samples yet; upload some first")
        return files

    def _voice_info(acct: Account, name: str) -> dict:
        lib = srv.library(acct)
        if lib.exists(name):
            record = lib.record(name)
            return {
                "name": name,
                "state": "ready",
                **{k: record.get(k) for k in ("id", "language", "created", "quality", "similarity", "clean_speech_s")},
                "consent": (record.get("consent") or {}).get("kind"),
            }
        return _draft_info(acct, name)

    @app.post("/v1/voices", status_code=201)
    async def new_voice(req: NewVoice, acct: Account = Depends(account)):
        path = _draft(acct, req.name, create=True)
        if req.language is not None:
            try:
                resolve_language(req.language)
            except ValueError as e:
                raise ApiError(400, str(e)) from e
        if srv.library(acct).exists(req.name) or path.exists():
            raise VoiceExistsError(f"a voice named {req.name!r} already exists; pick another name or delete it first")
        tmp = path.with_name(f".{req.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "samples").mkdir(parents=True)
        (tmp / "draft.json").write_text(
            json.dumps({"language": req.language, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        )
        os.replace(tmp, path)
        return _draft_info(acct, req.name)

    @app.get("/v1/voices")
    async def list_voices(acct: Account = Depends(account)):
        lib = srv.library(acct)
        names = set(lib.names())
        drafts = srv.drafts(acct)
        if drafts.is_dir():
            names |= {p.name for p in drafts.iterdir() if p.is_dir() and not p.name.startswith(".")}
        return {"voices": [_voice_info(acct, n) for n in sorted(names)]}

    @app.get("/v1/voices/{name}")
    async def get_voice(name: str, acct: Account = Depends(account)):
        return _voice_info(acct, name)

    async def _save_upload(upload: UploadFile, dest: Path) -> tuple[float, int]:
        """Write an upload, decode it to check it is audio; nothing is left on failure."""
        tmp = dest.with_name(f".{dest.name}.part")
        size = 0
        try:
            with open(tmp, "wb") as f:
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > config.max_upload_bytes:
                        raise ApiError(
                            413,
                            f"{upload.filename} is larger than {config.max_upload_bytes:,} bytes",
                            "request_too_large",
                        )
                    f.write(chunk)
            try:
                samples, rate = await run_in_threadpool(read_audio, tmp)
            except AudioInputError as e:
                raise ApiError(400, f"{upload.filename}: {str(e).replace(str(tmp), 'the file')}") from e
            seconds = len(samples) / rate
            if seconds < 0.3:
                raise ApiError(400, f"{upload.filename}: only {seconds:.2f} s of audio")
            os.replace(tmp, dest)
            return seconds, rate
        finally:
            tmp.unlink(missing_ok=True)

    def _suffix(filename: str | None) -> str:
        suffix = Path(filename or "").suffix.lower()
        if suffix not in AUDIO_SUFFIXES:
            raise ApiError(400, f"{filename!r}: unsupported file type; send {', '.join(sorted(AUDIO_SUFFIXES))}")
        return suffix

    @app.post("/v1/voices/{name}/samples", status_code=201)
    async def add_samples(name: str, files: list[UploadFile] = File(...), acct: Account = Depends(account)):
        path = _draft(acct, name)
        if srv.jobs.active_for(acct.id, name):
            raise ApiError(409, f"voice {name!r} is being built; wait for the build to finish", "conflict_error")
        existing = list((path / "samples").glob("*.json"))
        if len(existing) + len(files) > config.max_samples:
            raise ApiError(400, f"a voice takes at most {config.max_samples} sample files")
        added = []
        for i, upload in enumerate(files):
            suffix = _suffix(upload.filename)
            stem = f"{len(existing) + i + 1:04d}"
            seconds, rate = await _save_upload(upload, path / "samples" / f"{stem}{suffix}")
            info = {
                "id": stem,
                "filename": Path(upload.filename or "").name[:120],
                "seconds": round(seconds, 2),
                "rate": rate,
            }
            (path / "samples" / f"{stem}.json").write_text(json.dumps(info))
            added.append(info)
        (path / "report.json").unlink(missing_ok=True)
        return {"added": added, **_draft_info(acct, name)}

    @app.get("/v1/voices/{name}/report")
    async def report(name: str, acct: Account = Depends(account)):
        lib = srv.library(acct)
        if lib.exists(name):
            return json.loads((lib.path(name) / "report.json").read_text())
        path = _draft(acct, name)
        cached = path / "report.json"
        if cached.is_file():
            return json.loads(cached.read_text())
        files = _samples(path, name)
        from ..cloning.collect import collect

        release = srv.scheduler.admit()
        try:
            col = await run_in_threadpool(srv.scheduler.run, 0, lambda: collect(files))
        finally:
            release()
        cached.write_text(json.dumps(col.report))
        return col.report

    @app.post("/v1/voices/{name}/consent")
    async def consent_statement(name: str, req: ConsentRequest, acct: Account = Depends(account)):
        _draft(acct, name)
        statement = srv.library(acct).consents.issue(name, speaker=req.speaker, purpose=req.purpose)
        srv.operator.audit.append("consent_statement", None, statement_id=statement.id)
        return statement.as_dict()

    @app.get("/v1/voices/{name}/consent")
    async def get_consent(name: str, acct: Account = Depends(account)):
        _draft(acct, name)
        return srv.library(acct).consents.pending(name).as_dict()

    @app.put("/v1/voices/{name}/consent/recording")
    async def consent_recording(name: str, file: UploadFile = File(...), acct: Account = Depends(account)):
        path = _draft(acct, name)
        srv.library(acct).consents.pending(name)  # a statement must have been issued first
        suffix = _suffix(file.filename)
        for old in path.glob("consent.*"):
            old.unlink()
        seconds, _ = await _save_upload(file, path / f"consent{suffix}")
        return {
            "stored": True,
            "seconds": round(seconds, 2),
            "note": "checked (words, voice, watermark) when the voice is built",
        }

    @app.post("/v1/voices/{name}/build", status_code=202)
    async def build(name: str, req: BuildRequest, acct: Account = Depends(account)):
        path = _draft(acct, name)
        if srv.jobs.active_for(acct.id, name):
            raise ApiError(409, f"voice {name!r} is already being built", "conflict_error")
        samples = _samples(path, name)
        consent = next(iter(path.glob("consent.*")), None)
        waiver = (req.waiver or "").strip() or None
        if waiver and not acct.admin:
            raise ApiError(
                403,
                "consent waivers (estates, research) need an admin key; record the consent statement instead",
                "permission_error",
            )
        if consent is None and not waiver:
            raise ApiError(
                400,
                f"voice {name!r} has no consent recording: get the statement (POST /v1/voices/{name}/consent), "
                f"record the speaker reading it, upload it (PUT /v1/voices/{name}/consent/recording)",
            )
        meta = json.loads((path / "draft.json").read_text())
        tts = srv.tts_for(acct)
        budget_s = req.budget_s or default_budget(req.quality)

        def work(report) -> dict:
            from ..cloning.clone import clone

            def fit(entry: dict) -> None:
                report(
                    {
                        "message": f"fitting: step {entry['step']}",
                        "fraction": round(min(1.0, entry["elapsed"] / budget_s), 3),
                        **(
                            {"similarity": round(entry["best"], 4)}
                            if "best" in entry
                            else {
                                "heldout_loss": entry["heldout"],
                                **({"similarity": entry["similarity"]} if "similarity" in entry else {}),
                            }
                        ),
                    }
                )

            record = clone(
                name,
                samples,
                consent=consent if not waiver else None,
                waiver=waiver,
                quality=req.quality,
                lang=meta.get("language"),
                seed=req.seed,
                budget_s=budget_s,
                tts=tts,
                library=tts.library,
                progress=lambda m: report({"message": m}),
                fit_progress=fit,
            )
            shutil.rmtree(path, ignore_errors=True)  # the library keeps what it needs; uploads go
            return {"voice": name, "similarity": record["similarity"], "quality": record["quality"]}

        job = srv.jobs.submit(acct.id, name, "build", work)
        return job.as_dict()

    @app.get("/v1/jobs/{job_id}")
    async def get_job(job_id: str, acct: Account = Depends(account)):
        job = srv.jobs.get(job_id, acct.id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}", "not_found_error")
        return job.as_dict()

    @app.get("/v1/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request, acct: Account = Depends(account)):
        if srv.jobs.get(job_id, acct.id) is None:
            raise ApiError(404, f"no job {job_id!r}", "not_found_error")

        async def events():
            last = None
            version = -1
            while True:
                job = srv.jobs.get(job_id, acct.id)
                state = json.dumps(job.as_dict())
                if state != last:
                    yield f"event: {job.state}\ndata: {state}\n\n"
                    last = state
                if job.state in ("done", "failed") or await request.is_disconnected():
                    return
                version = await run_in_threadpool(srv.jobs.wait, version, 10.0)
                if version == srv.jobs.version and state == last:
                    yield ": keep-alive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.delete("/v1/voices/{name}")
    async def delete_voice(name: str, acct: Account = Depends(account)):
        check_name(name, frozenset(srv.tts._stock()))
        if srv.jobs.active_for(acct.id, name):
            raise ApiError(409, f"voice {name!r} is being built; delete it when the build ends", "conflict_error")
        lib = srv.library(acct)
        removed = False
        if lib.exists(name):
            await run_in_threadpool(lib.delete, name)
            removed = True
        draft = srv.drafts(acct) / name
        if draft.is_dir():
            gone = draft.with_name(f".{name}.deleting")
            os.replace(draft, gone)
            shutil.rmtree(gone)
            removed = True
        lib.consents.consume(name)
        if not removed:
            raise VoiceNotFoundError(f"no voice named {name!r}")
        return {"deleted": name}

    @app.get("/v1/voices/{name}/export")
    async def export_voice(name: str, acct: Account = Depends(account)):
        check_name(name, frozenset(srv.tts._stock()))
        lib = srv.library(acct)
        lib.record(name)  # 404 for drafts and other accounts' voices alike
        tmp = Path(tempfile.mkdtemp(prefix="voxclone-export-"))
        dest = tmp / f"{name}.voxclone"
        await run_in_threadpool(lib.export, name, dest)
        return FileResponse(
            dest,
            media_type="application/zip",
            filename=dest.name,
            background=BackgroundTask(shutil.rmtree, tmp, True),
        )

    # ------------------------------------------------------------ detect
    @app.post("/v1/detect")
    async def detect(file: UploadFile = File(...), acct: Account = Depends(account)):
        suffix = Path(file.filename or "").suffix.lower() or ".bin"
        if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
            suffix = ".bin"
        tmp = Path(tempfile.mkdtemp(prefix="voxclone-detect-"))
        try:
            dest = tmp / f"upload{suffix}"
            await _save_upload(file, dest)
            release = srv.scheduler.admit()
            try:
                result = await run_in_threadpool(srv.scheduler.run, 0, lambda: detect_file(dest, srv.tts.watermarker))
            finally:
                release()
            result["file"] = Path(file.filename or "upload").name
            return result
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------ accounts (admin)
    @app.post("/v1/accounts", status_code=201)
    async def new_account(req: NewAccount, acct: Account = Depends(admin)):
        try:
            made, key = srv.accounts.create(req.name, req.admin)
        except AccountError as e:
            raise ApiError(
                409 if "exists" in str(e) else 400,
                str(e),
                "conflict_error" if "exists" in str(e) else "invalid_request_error",
            ) from e
        srv.operator.audit.append("account_created", None, account=made.id, admin=made.admin)
        return {**made.as_dict(), "api_key": key}

    @app.get("/v1/accounts")
    async def list_accounts(acct: Account = Depends(admin)):
        return {"accounts": [a.as_dict() for a in srv.accounts.list()]}

    @app.get("/v1/me")
    async def me(acct: Account = Depends(account)):
        return acct.as_dict()

    @app.post("/v1/accounts/{account_id}/keys", status_code=201)
    async def new_key(account_id: str, acct: Account = Depends(admin)):
        try:
            return {"account": account_id, "api_key": srv.accounts.new_key(account_id)}
        except AccountError as e:
            raise ApiError(404, str(e), "not_found_error") from e

    @app.delete("/v1/accounts/{account_id}")
    async def close_account(account_id: str, acct: Account = Depends(admin)):
        if account_id == acct.id:
            raise ApiError(400, "an admin cannot close their own account")
        try:
            target = srv.accounts.get(account_id)
        except AccountError as e:
            raise ApiError(404, str(e), "not_found_error") from e
        srv.accounts.disable(account_id)
        lib = srv.library(target)
        for name in lib.names():
            await run_in_threadpool(lib.delete, name)
        shutil.rmtree(srv.accounts.folder(target), ignore_errors=True)
        srv._tts.pop(account_id, None)
        srv.operator.audit.append("account_closed", None, account=account_id)
        return {"closed": account_id}

    # ------------------------------------------------------------ web UI
    if STATIC.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        async def index():
            return FileResponse(STATIC / "index.html")

    return app


__all__ = ["ServerConfig", "create_app"]
