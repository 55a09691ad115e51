"""Background jobs (voice builds) for the server: one worker, a bounded queue, state in SQLite.

A job's state survives the process; a job that was queued or running when the server stopped is
marked failed at the next start (building writes the voice in one rename at the very end, so an
interrupted build leaves nothing half-written and can simply be started again).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .limits import Busy

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    voice TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""
STATES = ("queued", "running", "done", "failed")
INTERRUPTED = "interrupted by a server restart; nothing was stored, start the build again"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    account: str
    voice: str
    kind: str
    state: str
    progress: dict = field(default_factory=dict)
    result: dict | None = None
    error: str | None = None
    created: str = ""
    updated: str = ""

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "voice": self.voice,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "updated": self.updated,
        }


class Jobs:
    """Queue work, run it on one background thread, and tell watchers about every change."""

    def __init__(self, path: str | Path, max_queued: int = 4):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._changed = threading.Condition()
        self._version = 0
        with self._connect() as db:
            db.executescript(SCHEMA)
            n = db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, updated = ? WHERE state IN ('queued', 'running')",
                (INTERRUPTED, _now()),
            ).rowcount
        if n:
            log.warning("%d job(s) were interrupted by a restart and are marked failed", n)
        self._worker = threading.Thread(target=self._run, name="voxclone-jobs", daemon=True)
        self._worker.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def submit(self, account: str, voice: str, kind: str, work: Callable[[Callable[[dict], None]], dict]) -> Job:
        """Queue ``work(report)``; it returns the result dict or raises. Busy when the queue is full."""
        job = Job(secrets.token_hex(8), account, voice, kind, "queued", {"message": "queued"}, created=_now())
        job.updated = job.created
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, account, voice, kind, state, progress, created, updated) VALUES (?,?,?,?,?,?,?,?)",
                (job.id, account, voice, kind, job.state, json.dumps(job.progress), job.created, job.updated),
            )
        try:
            self._queue.put_nowait((job.id, work))
        except queue.Full:
            self._update(job.id, state="failed", error="the build queue is full")
            raise Busy(f"{self._queue.qsize()} builds are already waiting; retry later", 30.0) from None
        return job

    def get(self, job_id: str, account: str | None = None) -> Job | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, account, voice, kind, state, progress, result, error, created, updated FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        if row is None or (account is not None and row[1] != account):
            return None
        return Job(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            json.loads(row[5] or "{}"),
            json.loads(row[6]) if row[6] else None,
            row[7],
            row[8],
            row[9],
        )

    def active_for(self, account: str, voice: str) -> Job | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE account = ? AND voice = ? AND state IN ('queued', 'running')",
                (account, voice),
            ).fetchone()
        return self.get(row[0]) if row else None

    def wait(self, version: int, timeout: float) -> int:
        """Block until any job changes after ``version`` (or ``timeout``); return the new version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version, timeout=timeout)
            return self._version

    @property
    def version(self) -> int:
        return self._version

    def _update(self, job_id: str, **fields) -> None:
        fields["updated"] = _now()
        for k in ("progress", "result"):
            if k in fields and fields[k] is not None:
                fields[k] = json.dumps(fields[k])
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            job_id, work = self._queue.get()
            self._update(job_id, state="running", progress={"message": "starting"})

            def report(progress: dict, job_id=job_id) -> None:
                self._update(job_id, progress=progress)

            try:
                result = work(report)
            except Exception as e:  # a failed build is the job's outcome, not the server's
                log.info("job %s failed: %s", job_id, e)
                self._update(job_id, state="failed", error=str(e) or type(e).__name__)
            else:
                self._update(job_id, state="done", result=result, progress={"message": "done", "fraction": 1.0})
            finally:
                self._queue.task_done()
